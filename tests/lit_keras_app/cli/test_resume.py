"""Exact resume on every replica layout, through train.py: one device, 4 logical devices in one
process, 2 processes × 2 logical devices (MultiWorkerMirroredStrategy over loopback). Each run
is SIGKILLed at a random step, resumed, SIGKILLed again while a checkpoint is being written (the
pod's chief then also rolled back behind the second worker, as a kill between their writes leaves
them), and resumed to the end; its per-step losses must equal a straight run's. The data holds records the
pipeline drops, and is split into 4 streams, so every layout sees the same global batches: the
layouts' losses equal each other too (the pod simulation equals the 4-replica host). The Keras
`fit()` engine resumes exactly from its BackupAndRestore backup as well."""
import io
import json
import os
import random
import shutil
import signal
import socket
import time

import numpy as np
from PIL import Image
import pytest
import tensorflow as tf

from lit_keras.data import pipeline
from lit_keras.data import schema
from lit_keras.training import runner
from lit_keras_app import resolve
from tests import runs

TOTAL, PER_LOOP, EVERY = 24, 2, 4
FLAGS = [f"--config.total_steps={TOTAL}", f"--config.steps_per_loop={PER_LOOP}",
         f"--config.checkpoint_every={EVERY}", f"--config.log_every={EVERY}",
         "--config.deterministic=True", "--config.data.num_streams=4",
         "--config.batch_size=32", "--config.dataset="]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
  """The digits training shards plus a shard mixing good records with ones the pipeline drops
  (undecodable image bytes, no caption)."""
  cache = str(tmp_path_factory.mktemp("cache"))
  out = tmp_path_factory.mktemp("data")
  files = pipeline.list_files(resolve.resolve(runs.config(cache)).data.train)
  for f in files:
    shutil.copy(f, out)
  rng = np.random.default_rng(0)
  with tf.io.TFRecordWriter(str(out / "train-extra.tfrecord")) as w:
    for i in range(40):
      buf = io.BytesIO()
      Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(buf, format="PNG")
      if i % 4 == 1:
        w.write(schema.image_example(b"not an image", ["a photo of the digit one"], f"bad{i}"))
      elif i % 4 == 3:
        w.write(schema.image_example(buf.getvalue(), ["", "  "], f"nocaption{i}"))
      else:
        w.write(schema.image_example(buf.getvalue(), [f"the number {i % 10}"], f"x{i}", i % 10))
  return cache, str(out / "*.tfrecord")


def _free_port():
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _start(layout, cache, data, workdir, *extra):
  flags = FLAGS + [f"--config.data.train={data}", *extra]
  if layout == "one":
    return [runs.run_train_py(cache, workdir, "--strategy=one-device", *flags)]
  if layout == "mirrored":
    return [runs.run_train_py(cache, workdir, "--strategy=mirrored", "--cpu_devices=4", *flags)]
  ports = [_free_port(), _free_port()]
  return [runs.run_train_py(
      cache, workdir, "--strategy=multi-worker", "--cpu_devices=2", *flags,
      env={"TF_CONFIG": json.dumps({"cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]},
                                    "task": {"type": "worker", "index": i}})})
          for i in range(2)]


def _finish(procs, timeout=400):
  outs = [p.communicate(timeout=timeout)[0] for p in procs]
  assert [p.returncode for p in procs] == [0] * len(procs), "\n".join(o[-3000:] for o in outs)
  return outs


def _kill(procs):
  for p in procs:
    p.send_signal(signal.SIGKILL)
  for p in procs:
    p.wait()


def _steps_logged(workdir):
  return max(runner.logged_steps(workdir), default=0)


def _kill_at_step(procs, workdir, step, timeout=300):
  t0 = time.time()
  while _steps_logged(workdir) < step:
    if any(p.poll() is not None for p in procs) or time.time() - t0 > timeout:
      raise AssertionError(f"the run ended or stalled before step {step}: "
                           + procs[0].stdout.read()[-3000:])
    time.sleep(0.05)
  _kill(procs)


def _kill_inside_a_checkpoint_write(procs, workdir, timeout=300):
  """SIGKILL the moment a checkpoint's temporary files appear (TF writes `<prefix>_temp/`, then
  renames and only then updates the `checkpoint` state file)."""
  ckpt_dir = os.path.join(workdir, "checkpoints")
  t0 = time.time()
  while time.time() - t0 < timeout:
    if os.path.isdir(ckpt_dir) and any("_temp" in e for e in os.listdir(ckpt_dir)):
      _kill(procs)
      return True
    if any(p.poll() is not None for p in procs):
      break
  _kill(procs)
  return False


def _losses(workdir):
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    records = [json.loads(line) for line in f if line.strip()]
  assert [r["step"] for r in records] == list(range(1, TOTAL + 1))  # one line per step
  return np.array([r["loss"] for r in records])


@pytest.fixture(scope="module")
def straight(data, tmp_path_factory):
  cache, files = data
  workdir = str(tmp_path_factory.mktemp("straight"))
  _finish(_start("one", cache, files, workdir))
  losses = _losses(workdir)
  assert losses[-4:].mean() < losses[:4].mean() - 0.3  # it learns
  return {"workdir": workdir, "losses": losses}


def _roll_back_the_chief(workdir):
  """What a kill between the chief's and a worker's checkpoint write leaves: the chief's latest
  checkpoints are not in its state file, the worker's own copy is ahead."""
  step = lambda p: int(p.rsplit("-", 1)[1]) if p else 0
  chief_dir = os.path.join(workdir, "checkpoints")
  worker = tf.train.latest_checkpoint(os.path.join(workdir, "worker_1", "checkpoints"))
  paths = list(tf.train.get_checkpoint_state(chief_dir).all_model_checkpoint_paths)
  while len(paths) > 1 and step(paths[-1]) >= step(worker):
    paths.pop()
  tf.compat.v1.train.update_checkpoint_state(chief_dir, paths[-1], paths)
  chief = tf.train.latest_checkpoint(chief_dir)
  assert 0 < step(chief) < step(worker), (worker, chief)


# The default suite kills and resumes the pod layout (2 processes × 2 devices: the chief's and the
# worker's checkpoints both in play); one device and 4 replicas in one process are `slow`.
@pytest.mark.parametrize("layout", [pytest.param("one", marks=pytest.mark.slow),
                                    pytest.param("mirrored", marks=pytest.mark.slow), "pod"])
def test_killed_twice_and_resumed_equals_the_straight_run(data, straight, tmp_path, layout):
  cache, files = data
  workdir = str(tmp_path)
  # 1. SIGKILL at a random step (not a checkpoint boundary in general).
  kill_at = random.Random(layout).randint(2 * EVERY + 1, TOTAL // 2)  # after 2 checkpoints
  _kill_at_step(_start(layout, cache, files, workdir), workdir, kill_at)
  first = tf.train.latest_checkpoint(os.path.join(workdir, "checkpoints"))
  assert first and int(first.rsplit("-", 1)[1]) < TOTAL
  # 2. Resumed; SIGKILLed while a checkpoint is being written (retried a few times: the window
  # is short). The half-written checkpoint never becomes the latest.
  for _ in range(3):
    procs = _start(layout, cache, files, workdir)
    if _kill_inside_a_checkpoint_write(procs, workdir):
      after = tf.train.latest_checkpoint(os.path.join(workdir, "checkpoints"))
      assert after is None or int(after.rsplit("-", 1)[1]) <= TOTAL
      break
  else:
    pytest.fail("never caught a checkpoint write in progress")
  if layout == "pod":
    # The chief's checkpoints behind the second worker's: both must resume from the chief's.
    _roll_back_the_chief(workdir)
  # 3. Resumed to the end.
  outs = _finish(_start(layout, cache, files, workdir))
  assert "resumed from" in outs[0]
  np.testing.assert_allclose(_losses(workdir), straight["losses"], rtol=2e-5, atol=1e-6)
  if layout == "pod":  # the second worker ends with the chief's weights
    _, chief = runs.weights(workdir)
    _, worker = runs.weights(workdir, os.path.join("worker_1", "checkpoints"))
    assert chief.keys() == worker.keys()
    for k in chief:
      np.testing.assert_array_equal(chief[k], worker[k], err_msg=k)


def test_keras_fit_engine_resumes_exactly_and_matches_the_runner(data, straight, tmp_path):
  """train.py --engine=fit: the same step and data as the runner (equal weights), and a run
  SIGTERMed after a BackupAndRestore backup resumes where the backup stands."""
  cache, files = data
  straight_fit = str(tmp_path / "fit")
  _finish(_start("one", cache, files, straight_fit, "--engine=fit"))
  _, w_orbit = runs.weights(straight["workdir"])
  _, w_fit = runs.weights(straight_fit)
  assert w_orbit.keys() == w_fit.keys()
  for k in w_orbit:
    np.testing.assert_allclose(w_fit[k], w_orbit[k], atol=1e-5, err_msg=k)

  killed = str(tmp_path / "fit_killed")
  procs = _start("one", cache, files, killed, "--engine=fit")
  backup = os.path.join(killed, "backup", "chief")
  t0 = time.time()
  while not (os.path.isdir(backup) and tf.train.latest_checkpoint(backup)):
    assert procs[0].poll() is None and time.time() - t0 < 300, procs[0].stdout.read()[-3000:]
    time.sleep(0.05)
  procs[0].send_signal(signal.SIGTERM)
  procs[0].wait()
  from lit_keras.training import keras_fit
  resumed_from = keras_fit.backed_up_step(os.path.join(killed, "backup"))
  assert 0 < resumed_from < TOTAL
  _finish(_start("one", cache, files, killed, "--engine=fit"))
  path, w_killed = runs.weights(killed)
  assert path.endswith(f"ckpt-{TOTAL}")  # no step done twice (nor skipped)
  assert w_killed.keys() == w_fit.keys()
  for k in w_fit:  # the model and the optimizer's moments
    np.testing.assert_allclose(w_killed[k], w_fit[k], atol=1e-5, err_msg=k)


# The chunked step on 4 replicas is checked in the default suite by
# tests/models/test_gradient_cache.py; this is the same through train.py.
@pytest.mark.slow
def test_chunked_run_on_four_replicas_equals_the_straight_run(data, straight, tmp_path):
  """train.py with gradient caching (chunks of 3 rows of each replica's 8) and the blocked loss
  (blocks of 7 of the 32 columns), on 4 logical devices: every step's loss is the whole-batch
  one-device run's, and so are the weights it ends with."""
  cache, files = data
  workdir = str(tmp_path)
  _finish(_start("mirrored", cache, files, workdir, "--config.chunk_size=3",
                 "--config.loss_block_size=7"))
  np.testing.assert_allclose(_losses(workdir), straight["losses"], rtol=2e-5, atol=1e-6)
  _, w_whole = runs.weights(straight["workdir"])
  _, w_chunked = runs.weights(workdir)
  assert w_whole.keys() == w_chunked.keys()
  for k in w_whole:
    np.testing.assert_allclose(w_chunked[k], w_whole[k], atol=1e-5, err_msg=k)
