"""train.py end to end: SIGTERM (resume after kills and on every layout: test_resume.py)."""
import os
import re
import signal

import pytest
import tensorflow as tf

from lit_keras.training import runner
from lit_keras.training import trainer
from tests import runs


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
  return str(tmp_path_factory.mktemp("cache"))


def test_sigterm_saves_and_exits_with_code(cache, tmp_path):
  """The loop running when SIGTERM arrives finishes, its step is saved, exit code 42; the next
  run resumes from exactly that step."""
  workdir = str(tmp_path)
  flags = ("--config.log_every=10", "--config.checkpoint_every=20", "--config.steps_per_loop=3")
  p = runs.run_train_py(cache, workdir, "--config.total_steps=100000", *flags)
  runs.wait_for_checkpoint(workdir, p)
  p.send_signal(signal.SIGTERM)
  out, _ = p.communicate(timeout=120)
  assert p.returncode == trainer.PREEMPTED_EXIT_CODE, out
  saved = int(re.search(r"SIGTERM: saved step (\d+)", out).group(1))
  last = int(tf.train.latest_checkpoint(os.path.join(workdir, "checkpoints")).rsplit("-", 1)[1])
  assert saved >= 20 and last == saved == runner.logged_steps(workdir)[-1], out
  # Resume: the next run starts at the saved step and logs every step after it, once.
  p = runs.run_train_py(cache, workdir, f"--config.total_steps={saved + 4}", *flags)
  out, _ = p.communicate(timeout=300)
  assert p.returncode == 0, out
  assert re.search(rf"resumed from \S+ckpt-{saved} at step {saved}$", out, re.M), out
  logged = runner.logged_steps(workdir)
  assert logged[-4:] == [saved + 1, saved + 2, saved + 3, saved + 4] and logged.count(saved) == 1
  assert tf.train.latest_checkpoint(os.path.join(workdir, "checkpoints")).endswith(
      f"ckpt-{saved + 4}")
