"""train.py end to end: SIGTERM (resume after kills and on every layout: test_resume.py)."""
import json
import os
import signal

import pytest
import tensorflow as tf

from lit_keras.training import trainer
from tests import runs


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
  return str(tmp_path_factory.mktemp("cache"))


def test_sigterm_saves_and_exits_with_code(cache, tmp_path):
  """The loop running when SIGTERM arrives finishes, its step is saved, exit code 42."""
  workdir = str(tmp_path)
  p = runs.run_train_py(cache, workdir, "--config.total_steps=100000", "--config.log_every=10",
                        "--config.checkpoint_every=20", "--config.steps_per_loop=3")
  runs.wait_for_checkpoint(workdir, p)
  p.send_signal(signal.SIGTERM)
  out, _ = p.communicate(timeout=120)
  assert p.returncode == trainer.PREEMPTED_EXIT_CODE, out
  assert "SIGTERM: saved step" in out
  last = int(tf.train.latest_checkpoint(os.path.join(workdir, "checkpoints")).rsplit("-", 1)[1])
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    logged = [json.loads(line)["step"] for line in f if line.strip()]
  assert last > 20 and last == logged[-1]  # the step it stopped at, not the last periodic one
