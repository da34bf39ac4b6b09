"""The dataset registry and what a dataset provides: files, splits, class names, prompt
templates, assets."""
import os

import tensorflow as tf

from lit_keras import cache
from lit_keras.evaluation import prompts


class Dataset:
  """An offline dataset that can build itself as TFRecords (`lit_keras.data.schema`).

  Subclasses set `name`, `splits` ({split: file glob relative to the data directory}) and
  implement `build`; optionally `templates` (prompt templates for zero-shot), `class_names`
  (what the labels mean) and `assets` (files made from the data, e.g. a tower pretrained on it).
  """

  name = None
  splits = {}
  templates = None
  # A file the build writes last (e.g. "summary.json"): built means it exists. Without one, built
  # means every split has files.
  done_file = None

  def default_dir(self, cache_dir=None):
    return cache.path("data", self.name, cache_dir=cache_dir)

  def build(self, data_dir, cache_dir):
    """Writes the dataset's files into `data_dir`."""
    raise NotImplementedError

  def is_built(self, data_dir):
    if self.done_file:
      return tf.io.gfile.exists(os.path.join(data_dir, self.done_file))
    return all(tf.io.gfile.glob(os.path.join(data_dir, p)) for p in self.splits.values())

  def ensure_built(self, data_dir, cache_dir):
    if not self.is_built(data_dir):
      self.build(data_dir, cache_dir)
    return data_dir

  def files(self, data_dir, split):
    """The file glob of `split`."""
    if split not in self.splits:
      raise ValueError(f"dataset {self.name!r} has no split {split!r}; splits: "
                       f"{sorted(self.splits)}")
    return os.path.join(data_dir, self.splits[split])

  def class_names(self, data_dir):
    """The class names the labels index, or None."""
    del data_dir
    return None

  def assets(self, cache_dir):
    """{name: path} of files derived from the data (configs refer to them as `NAME:asset`)."""
    del cache_dir
    return {}


_DATASETS = {}


def register(dataset):
  """Registers a `Dataset` instance under its `name`, with its class names and templates (under
  the same name) in `lit_keras.evaluation.prompts`. Returns it."""
  _DATASETS[dataset.name] = dataset

  def class_names(data_dir):
    names = dataset.class_names(data_dir or dataset.default_dir())
    if names is None:
      raise ValueError(f"dataset {dataset.name!r} has no class names (no labels to classify)")
    return names

  prompts.register_class_names(dataset.name, class_names)
  if dataset.templates:
    prompts.register_templates(dataset.name, dataset.templates)
  return dataset


def get(name):
  if name not in _DATASETS:
    raise ValueError(f"unknown dataset {name!r}; registered: {names()}")
  return _DATASETS[name]


def names():
  return sorted(_DATASETS)
