"""scikit-learn's digits (1,797 real 8×8 scans, 10 classes) as an image–text set.

Small enough for tests and a one-minute demo. Captions come from prompt templates over the class
names. The locked image tower for it is genuinely pretrained, without labels: a PCA of the
training images, exported as a TF-Hub image feature-vector SavedModel, so the demo runs LiT's "L"
image tower through the same `hub.KerasLayer` path as a tfhub.dev handle. Splits: `train` (1,400
scans), `test` (397). Assets: `digits:pca_feature_vector` (that image module) and `digits:vocab`
(a WordPiece vocabulary of the captions).
"""
import io
import os

import numpy as np
from PIL import Image
import tensorflow as tf
import tf_keras

from lit_keras.data import schema
from lit_keras.export import tfhub_format
from lit_keras_app.datasets import base

CLASS_NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
TEMPLATES = ("a photo of the digit {}", "handwritten {}", "the number {}", "an image of a {}")
IMAGE_SIZE = 8
NUM_TRAIN = 1400  # of 1,797; the remaining 397 are the held-out test split.
SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


def load(split, seed=0):
  """Returns (images float32 [n, 8, 8, 3] in [0, 1], labels int64 [n]) of "train" or "test"."""
  # Imported here: scikit-learn takes a second to import, and only this function needs it.
  from sklearn.datasets import load_digits  # pylint: disable=g-import-not-at-top
  if split not in ("train", "test"):
    raise ValueError(f"split must be 'train' or 'test', got {split!r}")
  d = load_digits()
  images = np.repeat((d.images / 16.0).astype(np.float32)[..., None], 3, axis=-1)
  order = np.random.default_rng(seed).permutation(len(images))
  idx = order[:NUM_TRAIN] if split == "train" else order[NUM_TRAIN:]
  return images[idx], d.target[idx].astype(np.int64)


def captions(labels, seed=0):
  """One templated caption per label, template drawn at random."""
  rng = np.random.default_rng(seed)
  return np.array([TEMPLATES[rng.integers(len(TEMPLATES))].format(CLASS_NAMES[y])
                   for y in labels])


def write_vocab(path):
  """A WordPiece vocab covering the templates and class names (plus BERT's special tokens)."""
  words = sorted({w for t in TEMPLATES for w in t.format("").split()} | set(CLASS_NAMES))
  with tf.io.gfile.GFile(path, "w") as f:
    f.write("\n".join(list(SPECIAL_TOKENS) + words) + "\n")
  return path


def build_pca_module(path, dim=32, seed=0):
  """Fits a PCA on the training images and exports it as a hub image feature vector."""
  images, _ = load("train", seed)
  flat = images[..., 0].reshape(len(images), -1)
  mean = flat.mean(0)
  comps = np.linalg.svd(flat - mean, full_matrices=False)[2][:dim]  # [dim, 64]
  inp = tf_keras.Input([IMAGE_SIZE, IMAGE_SIZE, 3])
  x = tf_keras.layers.Flatten()(tf_keras.layers.Lambda(lambda t: tf.reduce_mean(t, -1))(inp))
  dense = tf_keras.layers.Dense(dim, name="pca")
  model = tf_keras.Model(inp, dense(x), name="digits_pca")
  dense.set_weights([comps.T.astype(np.float32), (-mean @ comps.T).astype(np.float32)])
  return tfhub_format.export_image_feature_vector(model, path)


def prepare(cache_dir):
  """Builds (once) the digits demo's assets: the PCA image module and the vocab. Returns paths."""
  module = f"{cache_dir}/digits_pca_fv"
  vocab = f"{cache_dir}/digits_vocab.txt"
  if not tf.io.gfile.exists(f"{module}/saved_model.pb"):
    build_pca_module(module)
  if not tf.io.gfile.exists(vocab):
    write_vocab(vocab)
  return {"image_handle": module, "vocab": vocab}


def build(out_dir, num_shards=2):
  """Writes the digits train/test splits as TFRecords (PNG images, all four captions each)."""
  tf.io.gfile.makedirs(out_dir)
  summary = {}
  for split in ("train", "test"):
    images, labels = load(split)
    paths = [os.path.join(out_dir, f"{split}-{i:05d}-of-{num_shards:05d}.tfrecord")
             for i in range(num_shards)]
    writers = [tf.io.TFRecordWriter(p + ".tmp") for p in paths]
    for n, (image, label) in enumerate(zip(images, labels)):
      buf = io.BytesIO()
      Image.fromarray((image * 255).round().astype(np.uint8)).save(buf, format="PNG")
      texts = [t.format(CLASS_NAMES[label]) for t in TEMPLATES]
      writers[n % num_shards].write(schema.image_example(buf.getvalue(), texts,
                                                         f"{split}/{n}", int(label)))
    for w, p in zip(writers, paths):
      w.close()
      tf.io.gfile.rename(p + ".tmp", p, overwrite=True)
    summary[split] = len(labels)
  return summary


class Digits(base.Dataset):
  name = "digits"
  splits = {"train": "train-*.tfrecord", "test": "test-*.tfrecord"}
  templates = TEMPLATES

  def build(self, data_dir, cache_dir):
    build(data_dir)

  def class_names(self, data_dir):
    return list(CLASS_NAMES)

  def assets(self, cache_dir):
    paths = prepare(os.path.join(cache_dir, "data", "digits_assets"))
    return {"pca_feature_vector": paths["image_handle"], "vocab": paths["vocab"]}


base.register(Digits())
