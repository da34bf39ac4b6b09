"""A long pre-computed run through train.py keeps its memory flat after warm-up (~30 s)."""
import os
import time

from lit_keras.training import runner
from tests import runs

STEPS, WARM_UP, GROWTH_BOUND_MB = 2000, 200, 64


def _rss_mb(pid):
  with open(f"/proc/{pid}/status") as f:
    for line in f:
      if line.startswith("VmRSS:"):
        return int(line.split()[1]) / 1024
  raise AssertionError("no VmRSS")


def test_rss_stays_flat_over_2000_precomputed_steps(tmp_path):
  workdir = str(tmp_path / "run")
  proc = runs.run_train_py(str(tmp_path / "cache"), workdir, f"--config.total_steps={STEPS}",
                           "--config.precompute.enabled=True", "--config.log_every=50",
                           "--config.checkpoint_every=1000", "--config.steps_per_loop=10")
  samples = []  # (last logged step, RSS in MB)
  while proc.poll() is None:
    try:
      rss = _rss_mb(proc.pid)
    except (OSError, AssertionError):
      break
    samples.append((max(runner.logged_steps(workdir), default=0), rss))
    time.sleep(0.5)
  out = proc.communicate(timeout=60)[0]
  assert proc.returncode == 0, out[-3000:]
  after_warm_up = [rss for step, rss in samples if step >= WARM_UP]
  assert len(after_warm_up) > 20, samples[-5:]
  growth = max(after_warm_up) - after_warm_up[0]
  print(f"RSS at step {WARM_UP}: {after_warm_up[0]:.0f} MB; max after: {max(after_warm_up):.0f} "
        f"MB; growth {growth:.1f} MB over {STEPS - WARM_UP} steps")
  assert growth < GROWTH_BOUND_MB, (after_warm_up[0], max(after_warm_up))
  assert os.path.exists(os.path.join(workdir, "checkpoints"))
