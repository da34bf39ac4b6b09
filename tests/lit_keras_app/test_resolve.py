"""Resolving configs: datasets, symbolic handles, evaluators; bad configs; every config builds."""
import importlib
import math
import os

import pytest
import tensorflow as tf

from lit_keras.training import task as task_lib
from lit_keras_app import resolve
from tests import runs


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
  return str(tmp_path_factory.mktemp("cache"))


def test_references_datasets_ports_and_plain_paths(cache):
  vocab = resolve.reference("digits:vocab", cache)
  assert vocab == os.path.join(cache, "data", "digits_assets", "digits_vocab.txt")
  assert open(vocab).read().split()[:4] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]"]
  for plain in ("https://tfhub.dev/google/bit/m-r50x1/1", "gs://bucket/model", "/abs/dir",
                "relative/dir", "unknown_scope:thing"):
    assert resolve.reference(plain, cache) == plain
  with pytest.raises(ValueError, match="no asset 'nope'"):
    resolve.reference("digits:nope", cache)
  with pytest.raises(ValueError, match="unknown port"):
    resolve.reference("ports:resnet/feature_vector", cache)


def test_dataset_files_and_evaluators_resolved(cache):
  c = resolve.resolve(runs.config(cache))
  data_dir = os.path.join(cache, "data", "digits")
  assert c.data.dir == data_dir and c.data.train == os.path.join(data_dir, "train-*.tfrecord")
  zs = c.evals.test_zero_shot
  assert (zs.data, zs.data_dir, zs.classes, zs.templates) == (
      os.path.join(data_dir, "test-*.tfrecord"), data_dir, "digits", "digits")
  assert c.evals.test_retrieval.data == zs.data
  assert c.image.handle.endswith("digits_pca_fv") and c.text.vocab.endswith("digits_vocab.txt")
  evaluators = task_lib.LiTTask(c).build_evaluators()
  assert [type(e).__name__ for e in evaluators] == ["FewShot", "Retrieval", "ZeroShot"]
  fewshot, _, zero_shot = evaluators
  assert (fewshot.data, fewshot.train_data, fewshot.shots) == (
      zs.data, os.path.join(data_dir, "train-*.tfrecord"), (1, 5, 10))
  assert zero_shot.classes[3] == "three" and len(zero_shot.templates) == 4


def test_several_datasets_train_together(cache, tmp_path, monkeypatch):
  """`dataset = "a+b"`: both built, their training files read as one comma-separated list."""
  from lit_keras.data import pipeline
  from lit_keras_app.datasets import base

  class DigitsAgain(base.Dataset):  # a second dataset: the digits' training shards, renamed
    name, splits = "digits_again", {"train": "again-*.tfrecord"}

    def build(self, data_dir, cache_dir):
      os.makedirs(data_dir, exist_ok=True)
      for f in tf.io.gfile.glob(os.path.join(cache_dir, "data", "digits", "train-*")):
        tf.io.gfile.copy(f, os.path.join(data_dir, "again-" + os.path.basename(f)))

  monkeypatch.setitem(base._DATASETS, "digits_again", DigitsAgain())  # pylint: disable=protected-access
  c = resolve.resolve(runs.config(cache, dataset="digits+digits_again"))
  first = os.path.join(cache, "data", "digits", "train-*.tfrecord")
  second = os.path.join(cache, "data", "digits_again", "again-*.tfrecord")
  assert c.data.train == f"{first},{second}" and c.data.dir == ""
  files = pipeline.list_files(c.data.train)
  assert files == sorted(tf.io.gfile.glob(first) + tf.io.gfile.glob(second))
  assert len(files) == 2 * len(tf.io.gfile.glob(first)) > 0


def test_broad_config_options():
  broad = importlib.import_module("configs.broad")
  c = broad.get_config("LU,leave_out=openclipart")
  assert (c.setting, c.dataset, c.optim.lr) == ("LU", "emoji+emoji_3d", 1e-4)
  assert broad.get_config().dataset == "emoji+emoji_3d+openclipart"
  assert broad.get_config("Lu,runlocal").total_steps == 10
  for arg, match in [("uu", "setting 'uu'"), ("Lu,leave_out=digits", "leave_out='digits'"),
                     ("Lu,steps=3", "unknown option 'steps=3'")]:
    with pytest.raises(ValueError, match=match):
      broad.get_config(arg)


def test_resolve_rejects_bad_configs(cache, tmp_path):
  for key, value, match in [("setting", "Lx", "setting"), ("loss", "hinge", "loss"),
                            ("image.handle", "/no/such/module", "image.handle"),
                            ("data.train", "/no/such/*.tfrecord", "no TFRecord files")]:
    with pytest.raises((ValueError, FileNotFoundError), match=match):
      runs.prepare(runs.config(cache, **{key: value}))
  with pytest.raises(ValueError, match="divisible"):
    runs.prepare(runs.config(cache, batch_size=63)).validate(num_replicas=2)


@pytest.mark.parametrize("name", ["demo", "digits", "lit_b16_bert_base", "lit_bit_adafactor",
                                  "broad:Lu", "broad:LU"])
def test_configs_build(name, cache, tmp_path, image_module, bert_pair, vocab_file):
  """Every config builds a model; real-scale recipes with local stand-ins for their handles."""
  module, _, arg = name.partition(":")
  config = importlib.import_module(f"configs.{module}").get_config(arg or None)
  with config.unlocked():
    if config.image.handle.startswith("http"):
      assert config.text.encoder.startswith("http")  # names the public TF-Hub handles
    # Local stand-ins for the TF-Hub handles (or for what train.py resolves for the demo).
    config.image.handle = image_module
    config.image.image_size = 16
    config.text.preprocess, config.text.encoder = bert_pair
    config.text.vocab = vocab_file
    config.precompute.enabled = False
  task = task_lib.LiTTask(config)
  model = task.build_model()
  size = config.image.image_size
  out = model({"image": tf.zeros([2, size, size, 3]), "text": tf.constant(["a", "b"])})
  assert out["zimg"].shape == (2, config.model.embed_dim)
  # The optimizer and its schedule: the config's peak, warmup and decay (cosine unless named).
  opt, o = task.build_optimizer(), config.optim
  assert type(opt).__name__ == {"adamw": "AdamW", "adafactor": "Adafactor"}[o.name]
  total, warmup, decay = config.total_steps, o.warmup_steps, o.get("decay", "cosine")
  for step in (0, warmup // 2, warmup, (warmup + total) // 2, total):
    frac = min(max((step - warmup) / max(total - warmup, 1), 0.0), 1.0)
    want = (o.lr * step / warmup if step < warmup else
            {"cosine": o.lr * 0.5 * (1 + math.cos(math.pi * frac)), "linear": o.lr * (1 - frac),
             "constant": o.lr}[decay])
    # (the schedule object the optimizer holds; its public `learning_rate` is the value it last
    # applied, updated only by a step)
    got = float(opt._learning_rate(step))  # pylint: disable=protected-access
    assert got == pytest.approx(want, rel=1e-5, abs=1e-12), (name, step)
