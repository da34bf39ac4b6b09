"""Learning-rate schedules against the formulas, in NumPy."""
import math

import numpy as np
import pytest
import tensorflow as tf

from lit_keras.training import schedules


def _reference(step, peak, total, warmup, decay):
  if step < warmup:
    return peak * step / warmup
  frac = min(max((step - warmup) / max(total - warmup, 1), 0.0), 1.0)
  if decay == "cosine":
    return peak * 0.5 * (1 + math.cos(math.pi * frac))
  if decay == "linear":
    return peak * (1 - frac)
  return peak


@pytest.mark.parametrize("decay", schedules.DECAYS)
@pytest.mark.parametrize("warmup", [0, 7])
def test_matches_formula(decay, warmup):
  total, peak = 50, 3e-3
  sched = schedules.warmup_decay(peak, total, warmup, decay)
  steps = list(range(0, total + 6))
  got = [float(sched(tf.constant(s)) if callable(sched) else sched) for s in steps]
  want = [_reference(s, peak, total, warmup, decay) for s in steps]
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-9)
  assert got[total] == pytest.approx(0.0 if decay != "constant" else peak, abs=1e-9)


def test_rejects_unknown_decay():
  with pytest.raises(ValueError, match="decay"):
    schedules.warmup_decay(1e-3, 10, 0, "step")
