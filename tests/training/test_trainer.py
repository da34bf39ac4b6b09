"""train.py and the trainer on the digits config: resume, preemption, NaN, replicas, workers,
pre-computed embeddings."""
import json
import os
import signal
import socket
import subprocess
import sys
import time

import ml_collections
import numpy as np
import pytest
import tensorflow as tf

from configs import digits as digits_config
from lit_keras.training import tasks
from lit_keras.training import trainer

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
  return str(tmp_path_factory.mktemp("cache"))


def _config(cache, **overrides):
  c = digits_config.get_config()
  with c.unlocked():
    c.cache_dir = cache
    c.eval_every = 0
    for k, v in overrides.items():
      node = c
      *path, leaf = k.split(".")
      for p in path:
        node = node[p]
      node[leaf] = v
  return c


def _train(config, workdir, strategy=None, **kw):
  config = tasks.resolve(config, workdir)
  strategy = strategy or tf.distribute.get_strategy()
  return trainer.train(config, workdir, strategy, tasks.train_dataset_fn(config), **kw), config


def _weights(workdir, sub="checkpoints"):
  path = tf.train.latest_checkpoint(os.path.join(workdir, sub))
  reader = tf.train.load_checkpoint(path)
  dtypes = reader.get_variable_to_dtype_map()
  names = sorted(n for n in reader.get_variable_to_shape_map()
                 if "OPTIMIZER_SLOT" not in n and "save_counter" not in n
                 and dtypes[n].is_floating)
  return path, {n: reader.get_tensor(n) for n in names}


def _run_train_py(cache, workdir, *flags, env=None):
  cmd = [sys.executable, os.path.join(ROOT, "train.py"), "--config=configs/digits.py",
         f"--workdir={workdir}", f"--config.cache_dir={cache}", "--config.eval_every=0",
         *flags]
  return subprocess.Popen(cmd, cwd=ROOT, env=dict(os.environ, **(env or {})),
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _wait_for_checkpoint(workdir, proc, timeout=120):
  t0 = time.time()
  while time.time() - t0 < timeout:
    if tf.train.latest_checkpoint(os.path.join(workdir, "checkpoints")):
      return
    if proc.poll() is not None:
      raise AssertionError(proc.stdout.read())
    time.sleep(0.2)
  raise AssertionError("no checkpoint appeared")


def test_loss_goes_down_and_config_written(cache, tmp_path):
  metrics, config = _train(_config(cache, total_steps=150, log_every=10), str(tmp_path))
  history = json.load(open(tmp_path / "train_metrics.json"))
  assert history["step"] == 150 and metrics["loss"] < 3.0  # from ≈ 5 (chance, batch 64)
  written = json.load(open(tmp_path / "config.json"))
  assert written["setting"] == "Lu" and written["data"]["train"] == config.data.train


def test_sigkill_and_resume_equals_straight_run(cache, tmp_path):
  flags = ["--config.total_steps=60", "--config.checkpoint_every=20", "--config.log_every=20",
           "--config.deterministic=True"]
  straight = str(tmp_path / "straight")
  p = _run_train_py(cache, straight, *flags)
  assert p.wait(timeout=300) == 0, p.stdout.read()
  killed = str(tmp_path / "killed")
  p = _run_train_py(cache, killed, *flags, "--config.total_steps=60")
  _wait_for_checkpoint(killed, p)
  p.send_signal(signal.SIGKILL)
  p.wait()
  first = tf.train.latest_checkpoint(os.path.join(killed, "checkpoints"))
  assert first and int(first.rsplit("-", 1)[1]) < 60
  p = _run_train_py(cache, killed, *flags)
  out, _ = p.communicate(timeout=300)
  assert p.returncode == 0, out
  assert "resumed from" in out
  path_a, wa = _weights(straight)
  path_b, wb = _weights(killed)
  assert path_a.endswith("ckpt-60") and path_b.endswith("ckpt-60")
  assert wa.keys() == wb.keys()
  for k in wa:
    np.testing.assert_allclose(wa[k], wb[k], atol=1e-5, err_msg=k)


def test_sigterm_saves_and_exits_with_code(cache, tmp_path):
  workdir = str(tmp_path)
  p = _run_train_py(cache, workdir, "--config.total_steps=100000", "--config.log_every=10",
                    "--config.checkpoint_every=20")
  _wait_for_checkpoint(workdir, p)
  p.send_signal(signal.SIGTERM)
  out, _ = p.communicate(timeout=120)
  assert p.returncode == trainer.PREEMPTED_EXIT_CODE, out
  assert "SIGTERM: saved step" in out
  last = tf.train.latest_checkpoint(os.path.join(workdir, "checkpoints"))
  assert int(last.rsplit("-", 1)[1]) > 20  # saved at the step it stopped, not the last periodic


def test_nan_stops_with_step_and_keeps_last_good_checkpoint(cache, tmp_path):
  config = _config(cache, total_steps=200, log_every=1, checkpoint_every=1)
  with config.unlocked():
    config.optim.lr = 1e12
    config.optim.clip_grad_norm = None
    config.optim.warmup_steps = 0
  with pytest.raises(FloatingPointError, match=r"non-finite \w+=\S+ at step (\d+)") as e:
    _train(config, str(tmp_path))
  bad_step = int(str(e.value).split(" at step ")[1].split(";")[0])
  last = tf.train.latest_checkpoint(str(tmp_path / "checkpoints"))
  assert last is None or int(last.rsplit("-", 1)[1]) < bad_step
  if last:
    _, w = _weights(str(tmp_path))
    assert all(np.isfinite(v).all() for v in w.values() if v.dtype.kind == "f")


def test_mirrored_four_replicas_train(cache, tmp_path, mirrored_strategy):
  metrics, _ = _train(_config(cache, total_steps=40, log_every=10), str(tmp_path),
                      strategy=mirrored_strategy)
  assert metrics["loss"] < 4.0


def test_precomputed_matches_image_mode_without_augmentation(cache, tmp_path):
  losses = {}
  for pre in (False, True):
    workdir = str(tmp_path / f"pre{pre}")
    config = _config(cache, total_steps=30, log_every=1, deterministic=True)
    with config.unlocked():
      config.precompute.enabled = pre
    resolved = tasks.resolve(config, workdir)
    seen = []
    trainer.train(resolved, workdir, tf.distribute.get_strategy(),
                  tasks.train_dataset_fn(resolved),
                  eval_fn=None)
    seen = json.load(open(os.path.join(workdir, "train_metrics.json")))
    losses[pre] = seen
    if pre:
      assert resolved.precompute.dim == 32 and "embeddings" in resolved.precompute.train
  np.testing.assert_allclose(losses[True]["loss"], losses[False]["loss"], rtol=1e-4)
  # The pre-computed run re-assembles with the real image tower for evaluation.
  model, step, _ = trainer.restore_model(ml_collections.ConfigDict(
      json.load(open(tmp_path / "preTrue" / "config.json"))), str(tmp_path / "preTrue"))
  assert step == 30 and type(model.image_tower).__name__ == "HubImageTower"


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
    procs.append(_run_train_py(cache, workdir, "--strategy=multi-worker",
                               "--config.total_steps=10", "--config.log_every=5",
                               "--config.checkpoint_every=10",
                               env={"TF_CONFIG": json.dumps(tf_config)}))
  outs = [p.communicate(timeout=300)[0] for p in procs]
  assert [p.returncode for p in procs] == [0, 0], outs
  assert "with 2 replicas" in outs[0]
  _, chief = _weights(workdir)
  _, worker = _weights(workdir, os.path.join("worker_1", "checkpoints"))
  assert chief.keys() == worker.keys()
  for k in chief:
    np.testing.assert_array_equal(chief[k], worker[k], err_msg=k)


def _image_weights(workdir, step):
  reader = tf.train.load_checkpoint(os.path.join(workdir, "checkpoints", f"ckpt-{step}"))
  return {n: reader.get_tensor(n) for n in reader.get_variable_to_shape_map()
          if n.startswith("image_tower/") and "OPTIMIZER_SLOT" not in n}


def test_delayed_unlock_and_image_learning_rate(cache, tmp_path):
  # Uu with the image tower frozen for 5 steps, then trained.
  config = _config(cache, setting="Uu", total_steps=10, log_every=5, checkpoint_every=5)
  with config.unlocked():
    config.image.unlock_at_step = 5
  _train(config, str(tmp_path / "delayed"))
  initial = _image_weights(str(tmp_path / "delayed"), 5)
  later = _image_weights(str(tmp_path / "delayed"), 10)
  assert initial and initial.keys() == later.keys()
  fresh = tasks.resolve(config, str(tmp_path / "x"))
  from lit_keras.training import builders
  tower = builders.build_image_tower(fresh.image, "U")
  tower(tf.zeros([1, 8, 8, 3]))
  init = {w.name: w.numpy() for w in tower.weights}
  assert all(any(np.array_equal(v, i) for i in init.values()) for v in initial.values())
  assert any(not np.array_equal(initial[k], later[k]) for k in initial)
  # A zero learning-rate multiplier keeps an unlocked image tower exactly where it started.
  config = _config(cache, setting="Uu", total_steps=5, log_every=5, checkpoint_every=5)
  with config.unlocked():
    config.image.lr_mult = 0.0
  _train(config, str(tmp_path / "lr0"))
  frozen = _image_weights(str(tmp_path / "lr0"), 5)
  # (up to denormals flushed to zero by the CPU's flush-to-zero arithmetic: |diff| < 1e-37)
  assert all(any(v.shape == i.shape and np.allclose(v, i, rtol=0, atol=1e-37)
                 for i in init.values()) for v in frozen.values())


def test_mixed_precision_step(cache, tmp_path):
  import tf_keras
  try:
    metrics, _ = _train(_config(cache, total_steps=5, log_every=5, mixed_precision=True),
                        str(tmp_path))
  finally:
    tf_keras.mixed_precision.set_global_policy("float32")
  assert np.isfinite(metrics["loss"]) and metrics["temperature"] > 0


def test_resolve_rejects_bad_configs(cache, tmp_path):
  for key, value, match in [("setting", "Lx", "setting"), ("loss", "hinge", "loss"),
                            ("image.handle", "/no/such/module", "image.handle"),
                            ("data.train", "/no/such/*.tfrecord", "no TFRecord files")]:
    with pytest.raises((ValueError, FileNotFoundError), match=match):
      tasks.resolve(_config(cache, **{key: value}), str(tmp_path))
  with pytest.raises(ValueError, match="divisible"):
    tasks.validate_replicas(_config(cache, batch_size=63),
                            tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]))


@pytest.mark.parametrize("name", ["demo", "digits", "lit_b16_bert_base", "lit_bit_adafactor"])
def test_configs_build(name, cache, tmp_path, image_module, bert_pair, vocab_file):
  """Every config builds a model; real-scale recipes with local stand-ins for their handles."""
  import importlib
  from lit_keras.training import builders
  config = importlib.import_module(f"configs.{name}").get_config()
  with config.unlocked():
    if config.image.handle.startswith("http"):
      assert config.text.encoder.startswith("http")  # names the public TF-Hub handles
    # Local stand-ins for the TF-Hub handles (or for what train.py resolves for the demo).
    config.image.handle = image_module
    config.image.image_size = 16
    config.text.preprocess, config.text.encoder = bert_pair
    config.text.vocab = vocab_file
    config.precompute.enabled = False
  model = builders.build_model(config)
  size = config.image.image_size
  out = model({"image": tf.zeros([2, size, size, 3]), "text": tf.constant(["a", "b"])})
  assert out["zimg"].shape == (2, config.model.embed_dim)
  opt = builders.build_optimizer(config.optim, config.total_steps)
  assert float(opt.learning_rate) >= 0
