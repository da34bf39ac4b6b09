"""The trainer on the digits config: loss, NaN, pre-computed embeddings, delayed unlocking, the
image learning-rate multiplier, corrupt data. (Mixed precision: test_mixed_precision.py; several
replicas and hosts, and resume: tests/lit_keras_app/cli.)"""
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


def _initial_image_weights(config, tmp_path):
  """The unlocked image tower as built, saved under the same checkpoint names as the trainer's
  (`image_tower/...`), so that each trained tensor is compared with its own initial value."""
  tower = runs.prepare(config).build_image_tower("U")
  tower(tf.zeros([1, 8, 8, 3]))
  path = tf.train.Checkpoint(image_tower=tower).write(str(tmp_path / "initial" / "ckpt"))
  reader = tf.train.load_checkpoint(path)
  return {n: reader.get_tensor(n) for n in reader.get_variable_to_shape_map()
          if n.startswith("image_tower/")}


def test_delayed_unlock_and_image_learning_rate(cache, tmp_path):
  # Uu with the image tower frozen for 5 steps, then trained.
  config = runs.config(cache, setting="Uu", total_steps=10, log_every=5, checkpoint_every=5)
  with config.unlocked():
    config.image.unlock_at_step = 5
  runs.train(config, str(tmp_path / "delayed"))
  init = _initial_image_weights(config, tmp_path)
  at5, at10 = (_image_weights(str(tmp_path / "delayed"), s) for s in (5, 10))
  assert init and init.keys() == at5.keys() == at10.keys()
  for name, value in init.items():  # frozen for 5 steps: bit-identical to its own initial value
    np.testing.assert_array_equal(at5[name], value, err_msg=name)
  assert all(not np.array_equal(at10[n], init[n]) for n in init)  # then every tensor trains

  # The image learning-rate multiplier scales the image tower's update: one AdamW step (no
  # warmup, same gradients) moves each image weight by exactly mult × the update at mult 1;
  # mult 0 leaves it where it started (up to denormals flushed to zero: |diff| < 1e-37).
  deltas = {}
  for mult in (1.0, 0.5, 0.0):
    c = runs.config(cache, setting="Uu", total_steps=1, log_every=1, checkpoint_every=1,
                    deterministic=True)
    with c.unlocked():
      c.image.lr_mult = mult
      c.optim.warmup_steps = 0
    runs.train(c, str(tmp_path / f"mult{mult}"))
    after = _image_weights(str(tmp_path / f"mult{mult}"), 1)
    deltas[mult] = {n: after[n].astype(np.float64) - init[n] for n in init}
  for name in init:
    full = deltas[1.0][name]
    assert np.abs(full).max() > 0, name
    np.testing.assert_allclose(deltas[0.5][name], 0.5 * full, rtol=1e-3, atol=1e-7,
                               err_msg=name)
    np.testing.assert_allclose(deltas[0.0][name], 0.0, rtol=0, atol=1e-37, err_msg=name)


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
