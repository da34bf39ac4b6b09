"""A config's names → concrete files and paths, before the library's task reads it.

- `config.dataset` (a registered dataset, several joined by "+", or empty for your own files):
  built into `<cache>/data/<name>` (or, for one dataset, `data.dir`) on first use; an empty
  `data.train` becomes the files of their `data.train_split` (comma-separated globs).
- Symbolic handles in `image.handle`, `text.preprocess`, `text.encoder`, `text.vocab` and
  `text.sentencepiece_model`: `ports:NAME/PART` (a weight port, built on first use) or
  `DATASET:ASSET` (a file a dataset derives from its data, e.g. `digits:pca_feature_vector`).
  Only the fields the setting uses are resolved (a from-scratch text tower needs no encoder).
- Evaluators (`config.evals`): `dataset`/`split` become `data` and `data_dir`; `classes` and
  `templates` default to the dataset's.
"""
import os
import re

from lit_keras import cache
from lit_keras import towers
from lit_keras_app import datasets
from lit_keras_app.ports import pretrained

_REFERENCE = re.compile(r"([A-Za-z0-9_]+):(?!//)(.+)")


def reference(value, cache_dir=None):
  """The path behind `ports:NAME/PART` or `DATASET:ASSET`; other values are returned as they
  are (paths, URLs, `gs://` and TF-Hub handles)."""
  m = _REFERENCE.fullmatch(value or "")
  if not m:
    return value
  scope, key = m.groups()
  if scope == "ports":
    return pretrained.resolve(key, cache_dir)
  if scope in datasets.names():
    assets = datasets.get(scope).assets(cache.root(cache_dir))
    if key not in assets:
      raise ValueError(f"dataset {scope!r} has no asset {key!r}; assets: {sorted(assets)}")
    return assets[key]
  return value


def _dataset_dir(name, config):
  ds = datasets.get(name)
  if name == config.dataset and config.data.get("dir"):
    data_dir = config.data.dir
  else:
    data_dir = ds.default_dir(config.get("cache_dir") or None)
  return ds.ensure_built(data_dir, cache.root(config.get("cache_dir")))


def _resolve_handles(config):
  img_state, txt_state = towers.parse_setting(config.setting)
  cache_dir = config.get("cache_dir") or None
  if img_state != towers.SCRATCH or config.precompute.enabled:
    config.image.handle = reference(config.image.handle, cache_dir)
  if txt_state == towers.SCRATCH:
    if config.text.get("sentencepiece_model"):
      config.text.sentencepiece_model = reference(config.text.sentencepiece_model, cache_dir)
    else:
      config.text.vocab = reference(config.text.vocab, cache_dir)
  else:
    config.text.preprocess = reference(config.text.preprocess, cache_dir)
    config.text.encoder = reference(config.text.encoder, cache_dir)
  if not config.image.get("output_key"):
    config.image.output_key = None


def _resolve_evals(config):
  for spec in config.get("evals", {}).values():
    name = spec.get("dataset")
    if not name or spec.get("data"):
      continue
    ds = datasets.get(name)
    spec.data_dir = _dataset_dir(name, config)
    spec.data = ds.files(spec.data_dir, spec.split)
    if spec.get("train_split") and not spec.get("train_data"):
      spec.train_data = ds.files(spec.data_dir, spec.train_split)
    spec.classes = spec.get("classes") or (name if ds.class_names(spec.data_dir) else "")
    spec.templates = spec.get("templates") or (name if ds.templates else "")


def resolve(config):
  """Returns a resolved (still locked) copy of `config`. Raises ValueError naming bad fields."""
  config = config.copy_and_resolve_references()
  towers.parse_setting(config.setting)
  with config.unlocked():
    if config.get("dataset"):
      names = config.dataset.split("+")
      dirs = [_dataset_dir(name, config) for name in names]
      config.data.dir = dirs[0] if len(names) == 1 else ""
      if not config.data.train:
        split = config.data.get("train_split") or "train"
        config.data.train = ",".join(datasets.get(name).files(data_dir, split)
                                     for name, data_dir in zip(names, dirs))
    _resolve_handles(config)
    _resolve_evals(config)
  return config
