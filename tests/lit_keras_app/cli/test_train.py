"""train.py end to end: SIGKILL and resume, SIGTERM, two workers on loopback."""
import json
import os
import signal
import socket

import numpy as np
import pytest
import tensorflow as tf

from lit_keras.training import trainer
from tests import runs


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
  return str(tmp_path_factory.mktemp("cache"))


def test_sigkill_and_resume_equals_straight_run(cache, tmp_path):
  flags = ["--config.total_steps=60", "--config.checkpoint_every=20", "--config.log_every=20",
           "--config.deterministic=True"]
  straight = str(tmp_path / "straight")
  p = runs.run_train_py(cache, straight, *flags)
  assert p.wait(timeout=300) == 0, p.stdout.read()
  killed = str(tmp_path / "killed")
  p = runs.run_train_py(cache, killed, *flags, "--config.total_steps=60")
  runs.wait_for_checkpoint(killed, p)
  p.send_signal(signal.SIGKILL)
  p.wait()
  first = tf.train.latest_checkpoint(os.path.join(killed, "checkpoints"))
  assert first and int(first.rsplit("-", 1)[1]) < 60
  p = runs.run_train_py(cache, killed, *flags)
  out, _ = p.communicate(timeout=300)
  assert p.returncode == 0, out
  assert "resumed from" in out
  path_a, wa = runs.weights(straight)
  path_b, wb = runs.weights(killed)
  assert path_a.endswith("ckpt-60") and path_b.endswith("ckpt-60")
  assert wa.keys() == wb.keys()
  for k in wa:
    np.testing.assert_allclose(wa[k], wb[k], atol=1e-5, err_msg=k)


def test_sigterm_saves_and_exits_with_code(cache, tmp_path):
  workdir = str(tmp_path)
  p = runs.run_train_py(cache, workdir, "--config.total_steps=100000", "--config.log_every=10",
                        "--config.checkpoint_every=20")
  runs.wait_for_checkpoint(workdir, p)
  p.send_signal(signal.SIGTERM)
  out, _ = p.communicate(timeout=120)
  assert p.returncode == trainer.PREEMPTED_EXIT_CODE, out
  assert "SIGTERM: saved step" in out
  last = tf.train.latest_checkpoint(os.path.join(workdir, "checkpoints"))
  assert int(last.rsplit("-", 1)[1]) > 20  # saved at the step it stopped, not the last periodic


def _free_port():
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def test_multi_worker_on_loopback(cache, tmp_path):
  ports = [_free_port(), _free_port()]
  workdir = str(tmp_path)
  procs = []
  for i in range(2):
    tf_config = {"cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]},
                 "task": {"type": "worker", "index": i}}
    procs.append(runs.run_train_py(cache, workdir, "--strategy=multi-worker",
                                   "--config.total_steps=10", "--config.log_every=5",
                                   "--config.checkpoint_every=10",
                                   env={"TF_CONFIG": json.dumps(tf_config)}))
  outs = [p.communicate(timeout=300)[0] for p in procs]
  assert [p.returncode for p in procs] == [0, 0], outs
  assert "with 2 replicas" in outs[0]
  _, chief = runs.weights(workdir)
  _, worker = runs.weights(workdir, os.path.join("worker_1", "checkpoints"))
  assert chief.keys() == worker.keys()
  for k in chief:
    np.testing.assert_array_equal(chief[k], worker[k], err_msg=k)
