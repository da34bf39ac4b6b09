"""TensorFlow Datasets as a source of image–text examples, next to TFRecord globs.

A source `tfds:NAME[/CONFIG][:VERSION]:SPLIT[@DATA_DIR]` (e.g. `tfds:cifar100:test`,
`tfds:imagenet2012:validation@gs://my-bucket/tfds`, `tfds:coco_captions:val`,
`tfds:imagenet_v2/matched-frequency:test`) is read through `tfds.builder(...).as_dataset` and
mapped onto the project's parsed example (`lit_keras.data.schema.parse`), so training, the
evaluators and pre-computation read it like a TFRecord glob:

- `image/encoded`: the dataset's `Image` feature, still encoded (decoded later, as ours is);
- `texts`: its string features that describe the image — named like a caption, text, title,
  description, sentence or alt text, at the top level or in a sequence of dicts such as COCO's
  `captions/text`; not ids, file names, URLs, licences or languages — every caption kept; a
  dataset without such text (a classification set) gets its label's class name as the one
  caption;
- `label`: its `label` ClassLabel (or its only top-level ClassLabel), else −1; `class_names`
  gives the names (underscores as spaces; ImageNet's WordNet ids as the shipped ImageNet-1k
  names), so a zero-shot evaluator needs no class file;
- `id`: its id/filename feature, else TFDS's own record id.

The split may be sliced as TFDS allows (`train[:10%]`). Without `@DATA_DIR`, TFDS's default
(`TFDS_DATA_DIR`, or `~/tensorflow_datasets`) is used; the data must be prepared there
(`tfds build NAME`, or copied to the bucket): nothing is downloaded here. Training streams read
disjoint parts of the split (`tfds.even_splits`), so a stream depends only on (split, number of
streams, index, seed), as for TFRecords. Needs `tensorflow-datasets` (`pip install
lit_keras[tfds]`).
"""
import functools
import re

import tensorflow as tf

from lit_keras import assets
from lit_keras import errors
from lit_keras.data import schema

PREFIX = "tfds:"
_ID_NAMES = ("id", "image/id", "image_id", "image/filename", "file_name", "filename")
_WORDNET_ID = re.compile(r"^n\d{8}$")
# String features that describe the image (captions, titles, descriptions), and those that do
# not (ids, file names, URLs, licences, languages, MIME types).
_TEXT_NAME = re.compile(r"caption|text|description|title|sentence|query|alt", re.I)
_NOT_TEXT_NAME = re.compile(r"(^|/|_)id$|file_?name|url|license|language|mime", re.I)


def is_tfds(source):
  return isinstance(source, str) and source.startswith(PREFIX)


def _tfds():
  try:
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise errors.SetupError("a tfds: source needs tensorflow-datasets: pip install "
                            "'lit_keras[tfds]'") from e
  return tfds


def parse_source(source):
  """`tfds:NAME[/CONFIG][:VERSION]:SPLIT[@DATA_DIR]` → (name, split, data_dir or None)."""
  if not is_tfds(source):
    raise ValueError(f"not a TFDS source: {source!r}")
  body, _, data_dir = source[len(PREFIX):].partition("@")
  name, _, split = body.partition(":")
  version = re.match(r"^(\d+\.\d+\.\d+):(.+)$", split)  # NAME:1.2.3:SPLIT
  if version:
    name, split = f"{name}:{version.group(1)}", version.group(2)
  if not name or not split:
    raise ValueError(f"TFDS source {source!r}: expected tfds:NAME[/CONFIG][:VERSION]:SPLIT"
                     "[@DATA_DIR], e.g. tfds:cifar100:test")
  return name, split, data_dir or None


def builder(source):
  """The TFDS builder of `source` (its metadata; the data is read by `examples`)."""
  name, _, data_dir = parse_source(source)
  try:
    return _tfds().builder(name, data_dir=data_dir)
  except Exception as e:  # TFDS raises its own DatasetNotFoundError and kin, by name
    raise errors.NoFilesError(f"{source!r}: no TFDS dataset {name!r} ({type(e).__name__}: "
                              f"{str(e).splitlines()[0][:200]})") from e


def _walk(features, prefix=""):
  """(path, feature) of every feature, into dicts and sequences of dicts."""
  tfds = _tfds()
  for key, feature in features.items():
    path = f"{prefix}{key}"
    inner = feature.feature if isinstance(feature, tfds.features.Sequence) else feature
    if isinstance(inner, tfds.features.FeaturesDict):
      yield from _walk(inner, path + "/")
    else:
      yield path, feature


def _is_string(feature):
  """Text, or a string Tensor (COCO's captions)."""
  info = feature.get_tensor_info()
  return not isinstance(info, dict) and info.tf_dtype == tf.string


@functools.lru_cache(maxsize=None)
def layout(source):
  """Which features of the dataset become which schema fields:
  {"image", "texts": [paths], "label" or None, "id" or None, "class_names" or None}."""
  tfds = _tfds()
  features = builder(source).info.features
  flat = dict(_walk(features))
  images = [p for p, f in flat.items() if isinstance(f, tfds.features.Image) and "/" not in p]
  if not images:
    raise ValueError(f"{source!r}: the dataset has no top-level Image feature "
                     f"(features: {sorted(flat)})")
  image = "image" if "image" in images else images[0]
  texts = [p for p, f in flat.items() if _is_string(f) and _TEXT_NAME.search(p)
           and not _NOT_TEXT_NAME.search(p)]
  labels = [p for p, f in flat.items()
            if isinstance(f, tfds.features.ClassLabel) and "/" not in p]
  label = "label" if "label" in labels else (labels[0] if len(labels) == 1 else None)
  ids = [p for p in _ID_NAMES if p in flat]
  names = None
  if label:
    names = [n.replace("_", " ") for n in flat[label].names]
    if len(names) == 1000 and all(_WORDNET_ID.match(n) for n in names):
      names = assets.imagenet1k_classes()
  if not texts and not label:
    raise ValueError(f"{source!r}: the dataset has neither text nor a class label to use as "
                     f"captions (features: {sorted(flat)})")
  return {"image": image, "texts": texts, "label": label, "id": ids[0] if ids else None,
          "class_names": names}


def class_names(source):
  """The dataset's class names in label order (None without a class label)."""
  return layout(source)["class_names"]


def _get(example, path):
  for key in path.split("/"):
    example = example[key]
  return example


def examples(source, *, shard=None, shuffle_seed=None):
  """A tf.data.Dataset of `source`'s examples in the form of `schema.parse` (image still
  encoded), in the split's order, or with `shuffle_seed` its files shuffled by that seed.

  Args:
    shard: (index, count): only part `index` of `count` equal parts of the split
      (`tfds.even_splits`: any number of parts, whatever the number of files).
  """
  tfds = _tfds()
  name, split, _ = parse_source(source)
  lay = layout(source)
  if shard is not None:
    index, count = shard
    split = tfds.even_splits(split, n=count)[index] if count > 1 else split
  read_config = tfds.ReadConfig(shuffle_seed=shuffle_seed, add_tfds_id=lay["id"] is None,
                                try_autocache=False)
  try:
    ds = builder(source).as_dataset(
        split=split, shuffle_files=shuffle_seed is not None, read_config=read_config,
        decoders={lay["image"]: tfds.decode.SkipDecoding()})
  except (AssertionError, ValueError, tf.errors.NotFoundError) as e:
    raise errors.NoFilesError(
        f"{source!r} cannot be read ({type(e).__name__}: {str(e).splitlines()[0][:200]}). "
        f"Prepare it first (`tfds build {name.split(':')[0]}` where there is network, or copy "
        "the prepared data to the data_dir)") from e
  names = tf.constant(lay["class_names"] or [""])

  def convert(ex):
    texts = [tf.reshape(tf.cast(_get(ex, p), tf.string), [-1]) for p in lay["texts"]]
    label = (tf.cast(ex[lay["label"]], tf.int64) if lay["label"]
             else tf.constant(schema.NO_LABEL, tf.int64))
    if not texts:
      texts = [tf.reshape(tf.gather(names, label), [1])]
    ex_id = ex[lay["id"]] if lay["id"] else ex["tfds_id"]
    if ex_id.dtype != tf.string:
      ex_id = tf.strings.as_string(ex_id)
    return {schema.IMAGE: ex[lay["image"]], schema.TEXTS: tf.concat(texts, 0),
            schema.LABEL: label, schema.ID: ex_id}

  return ds.map(convert, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
