"""Learning-rate schedules: linear warm-up, then cosine, linear or no decay to zero.

Built from tf-models-official's schedules (`LinearWarmup` around `CosineDecayWithOffset` /
`PolynomialDecayWithOffset`), the ones the TF Model Garden trains with:

  lr(step) = peak · step / warmup                                   for step < warmup
  cosine:    peak · ½ (1 + cos(π · (step − warmup) / (total − warmup)))
  linear:    peak · (1 − (step − warmup) / (total − warmup))
  constant:  peak
"""
from official.modeling.optimization import lr_schedule

DECAYS = ("cosine", "linear", "constant")


def warmup_decay(peak, total_steps, warmup_steps=0, decay="cosine"):
  """The schedule above (a tf_keras `LearningRateSchedule`, or a float for constant without
  warm-up). Decays to zero at `total_steps`."""
  if decay not in DECAYS:
    raise ValueError(f"decay must be one of {DECAYS}, got {decay!r}")
  peak, total_steps, warmup_steps = float(peak), int(total_steps), int(warmup_steps)
  span = max(total_steps - warmup_steps, 1)
  if decay == "cosine":
    after = lr_schedule.CosineDecayWithOffset(offset=warmup_steps, initial_learning_rate=peak,
                                              decay_steps=span, alpha=0.0)
  elif decay == "linear":
    after = lr_schedule.PolynomialDecayWithOffset(offset=warmup_steps, initial_learning_rate=peak,
                                                  decay_steps=span, end_learning_rate=0.0,
                                                  power=1.0)
  else:
    after = peak
  if warmup_steps <= 0:
    return after
  return lr_schedule.LinearWarmup(after, warmup_steps=warmup_steps, warmup_learning_rate=0.0)
