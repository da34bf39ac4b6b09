"""Dataset-specific glue for train.py / evaluate.py: defaults, validation, input functions."""
import os

import tensorflow as tf

from lit_keras import towers
from lit_keras.datasets import digits
from lit_keras.training import builders

DATASETS = ("digits",)


def resolve(config, workdir):
  """Fills dataset defaults (the demo's own pretrained module and vocab) and validates.

  Returns a (still locked) copy; raises ValueError with the offending field on bad configs.
  """
  config = config.copy_and_resolve_references()
  if config.dataset not in DATASETS:
    raise ValueError(f"config.dataset={config.dataset!r}: expected one of {DATASETS}")
  img_state, txt_state = towers.parse_setting(config.setting)
  with config.unlocked():
    if config.dataset == "digits" and (not config.image.handle or not config.text.vocab):
      assets = digits.prepare(os.path.join(workdir, "assets"))
      config.image.handle = config.image.handle or assets["image_handle"]
      config.text.vocab = config.text.vocab or assets["vocab"]
    if not config.image.get("output_key"):
      config.image.output_key = None
  _check_path(config.image.handle, "config.image.handle", img_state != towers.SCRATCH)
  _check_path(config.text.vocab, "config.text.vocab", txt_state == towers.SCRATCH)
  _check_path(config.text.preprocess, "config.text.preprocess", txt_state != towers.SCRATCH)
  _check_path(config.text.encoder, "config.text.encoder", txt_state != towers.SCRATCH)
  if config.loss not in ("softmax", "sigmoid"):
    raise ValueError(f"config.loss={config.loss!r}: expected 'softmax' or 'sigmoid'")
  return config


def _check_path(value, field, needed):
  if not needed:
    return
  if not value:
    raise ValueError(f"{field} is empty but the setting needs it")
  is_handle = "://" in value or value.startswith(("https:", "gs:"))
  if not is_handle and not tf.io.gfile.exists(value):
    raise ValueError(f"{field}={value!r} does not exist")


def train_dataset_fn(config):
  """`(input_context, seed) -> per-replica tf.data.Dataset` for the trainer."""
  text_tower = builders.build_text_tower(config.text, config.setting[1])

  def fn(ctx, seed):
    per_replica = ctx.get_per_replica_batch_size(config.batch_size)
    if config.dataset == "digits":
      ds = digits.train_dataset(per_replica, text_tower.tokenize, seed=seed + ctx.input_pipeline_id)
    return ds

  return fn
