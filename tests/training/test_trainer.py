"""The trainer on the digits config: loss, NaN, pre-computed embeddings, delayed unlocking, mixed
precision, corrupt data. (Several replicas and hosts, and resume: tests/lit_keras_app/cli.)"""
import json
import os

import ml_collections
import numpy as np
import pytest
import tensorflow as tf

from lit_keras.training import trainer
from tests import runs


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
  return str(tmp_path_factory.mktemp("cache"))


def test_loss_goes_down_and_config_written(cache, tmp_path):
  metrics, config = runs.train(runs.config(cache, total_steps=150, log_every=10), str(tmp_path))
  history = json.load(open(tmp_path / "train_metrics.json"))
  assert history["step"] == 150 and metrics["loss"] < 3.0  # from ≈ 5 (chance, batch 64)
  written = json.load(open(tmp_path / "config.json"))
  assert written["setting"] == "Lu" and written["data"]["train"] == config.data.train


def test_nan_stops_with_step_and_keeps_last_good_checkpoint(cache, tmp_path):
  config = runs.config(cache, total_steps=200, log_every=1, checkpoint_every=1)
  with config.unlocked():
    config.optim.lr = 1e12
    config.optim.clip_grad_norm = None
    config.optim.warmup_steps = 0
  with pytest.raises(FloatingPointError, match=r"non-finite \w+=\S+ at step (\d+)") as e:
    runs.train(config, str(tmp_path))
  bad_step = int(str(e.value).split(" at step ")[1].split(";")[0])
  last = tf.train.latest_checkpoint(str(tmp_path / "checkpoints"))
  assert last is None or int(last.rsplit("-", 1)[1]) < bad_step
  if last:
    _, w = runs.weights(str(tmp_path))
    assert all(np.isfinite(v).all() for v in w.values() if v.dtype.kind == "f")


def test_precomputed_matches_image_mode_without_augmentation(cache, tmp_path):
  losses = {}
  for pre in (False, True):
    workdir = str(tmp_path / f"pre{pre}")
    config = runs.config(cache, total_steps=30, log_every=1, deterministic=True)
    with config.unlocked():
      config.precompute.enabled = pre
    task = runs.prepare(config)
    resolved = task.config
    trainer.train(task, workdir, tf.distribute.get_strategy())
    losses[pre] = json.load(open(os.path.join(workdir, "train_metrics.json")))
    if pre:
      assert resolved.precompute.dim == 32 and "embeddings" in resolved.precompute.train
  np.testing.assert_allclose(losses[True]["loss"], losses[False]["loss"], rtol=1e-4)
  # The pre-computed run re-assembles with the real image tower for evaluation.
  model, step, _ = trainer.restore_model(ml_collections.ConfigDict(
      json.load(open(tmp_path / "preTrue" / "config.json"))), str(tmp_path / "preTrue"))
  assert step == 30 and type(model.image_tower).__name__ == "HubImageTower"


def _image_weights(workdir, step):
  reader = tf.train.load_checkpoint(os.path.join(workdir, "checkpoints", f"ckpt-{step}"))
  return {n: reader.get_tensor(n) for n in reader.get_variable_to_shape_map()
          if n.startswith("image_tower/") and "OPTIMIZER_SLOT" not in n}


def test_delayed_unlock_and_image_learning_rate(cache, tmp_path):
  # Uu with the image tower frozen for 5 steps, then trained.
  config = runs.config(cache, setting="Uu", total_steps=10, log_every=5, checkpoint_every=5)
  with config.unlocked():
    config.image.unlock_at_step = 5
  runs.train(config, str(tmp_path / "delayed"))
  initial = _image_weights(str(tmp_path / "delayed"), 5)
  later = _image_weights(str(tmp_path / "delayed"), 10)
  assert initial and initial.keys() == later.keys()
  tower = runs.prepare(config).build_image_tower("U")
  tower(tf.zeros([1, 8, 8, 3]))
  init = {w.name: w.numpy() for w in tower.weights}
  assert all(any(np.array_equal(v, i) for i in init.values()) for v in initial.values())
  assert any(not np.array_equal(initial[k], later[k]) for k in initial)
  # A zero learning-rate multiplier keeps an unlocked image tower exactly where it started.
  config = runs.config(cache, setting="Uu", total_steps=5, log_every=5, checkpoint_every=5)
  with config.unlocked():
    config.image.lr_mult = 0.0
  runs.train(config, str(tmp_path / "lr0"))
  frozen = _image_weights(str(tmp_path / "lr0"), 5)
  # (up to denormals flushed to zero by the CPU's flush-to-zero arithmetic: |diff| < 1e-37)
  assert all(any(v.shape == i.shape and np.allclose(v, i, rtol=0, atol=1e-37)
                 for i in init.values()) for v in frozen.values())


def test_mixed_precision_step(cache, tmp_path):
  import tf_keras
  try:
    metrics, _ = runs.train(runs.config(cache, total_steps=5, log_every=5, mixed_precision=True),
                            str(tmp_path))
  finally:
    tf_keras.mixed_precision.set_global_policy("float32")
  assert np.isfinite(metrics["loss"]) and metrics["temperature"] > 0


def test_corrupt_training_shard_is_named(cache, tmp_path):
  """A shard whose record fails its CRC stops training with `CorruptDataError` naming the file
  and the byte offset, not TensorFlow's bare DataLossError."""
  import shutil
  from lit_keras.data import pipeline
  from lit_keras_app import resolve
  files = pipeline.list_files(resolve.resolve(runs.config(cache)).data.train)
  for f in files:
    shutil.copy(f, tmp_path)
  bad = tmp_path / os.path.basename(files[1])
  data = bytearray(bad.read_bytes())
  data[40] ^= 0xFF  # inside the first record's payload: its CRC no longer matches
  bad.write_bytes(bytes(data))
  config = runs.config(cache, total_steps=3)
  with config.unlocked():
    config.data.train = str(tmp_path / "train-*.tfrecord")
  with pytest.raises(pipeline.CorruptDataError,
                     match=rf"{bad.name}: corrupted record at \d+"):
    runs.train(config, str(tmp_path / "workdir"))
