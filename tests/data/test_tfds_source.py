"""TFDS as a source: a real dataset prepared offline by TFDS maps onto the example schema and
reads like the same examples in TFRecords; training streams partition a split; TFDS's mock data
of CIFAR-100 (classification) and COCO captions (captioning) maps as their own decoding says."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from tensorflow_datasets.testing import mocking

from lit_keras import errors
from lit_keras.data import pipeline
from lit_keras.data import preprocess
from lit_keras.data import schema
from lit_keras.data import tfds_source
from lit_keras.evaluation import evaluators
from lit_keras.evaluation import prompts
from tests import tiny_tfds


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
  data_dir = str(tmp_path_factory.mktemp("tfds"))
  return tiny_tfds.prepare(data_dir), data_dir


def _decoded(png):
  image, ok = preprocess.decode_image(tf.constant(png))
  assert bool(ok)
  return np.round(image.numpy() * 255).astype(np.uint8)


def test_examples_map_onto_the_schema(prepared):
  prefix, data_dir = prepared
  source = f"{prefix}:test@{data_dir}"
  truth = {ex["file_name"]: ex for ex in tiny_tfds.generated("test")}
  seen = []
  for ex in pipeline.eval_examples(source):
    want = truth[ex["id"].numpy().decode()]
    np.testing.assert_array_equal(_decoded(ex["image"].numpy()), want["image"])
    assert [t.decode() for t in ex["texts"].numpy()] == want["captions"]
    assert int(ex["num_texts"]) == len(want["captions"])
    assert int(ex["label"]) == want["label"]
    seen.append(ex["id"].numpy().decode())
  assert sorted(seen) == sorted(truth)
  assert tfds_source.class_names(source) == ["red square", "green circle", "blue bar"]


def test_training_streams_partition_the_split(prepared):
  prefix, data_dir = prepared
  source = f"{prefix}:train@{data_dir}"
  parts = [[ex["id"].numpy().decode() for ex in tfds_source.examples(source, shard=(i, 3),
                                                                      shuffle_seed=7)]
           for i in range(3)]
  assert sorted(sum(parts, [])) == sorted(e["file_name"] for e in tiny_tfds.generated("train"))
  assert [len(p) for p in parts] == [8, 8, 8]
  # A training batch: every image is a central crop of a dataset image, paired with one of
  # that image's own captions.
  by_caption = {c: ex for ex in tiny_tfds.generated("train") for c in ex["captions"]}
  ds = pipeline.train_dataset(source, 12, 16, augment=False, num_streams=3, seed=3)
  batch = next(iter(ds))
  assert batch["image"].shape == (12, 16, 16, 3)
  for image, text in zip(batch["image"].numpy(), batch["text"].numpy()):
    ex = by_caption[text.decode()]
    want = preprocess.central_crop_resize(tf.constant(ex["image"], tf.float32) / 255.0, 16)
    np.testing.assert_allclose(image, want.numpy(), atol=1e-6)


def _as_tfrecords(path, split, source=None):
  """The same examples written in the project's schema (PNG-encoded as TFDS does); with
  `source`, in the order it reads them (so that ties in a ranking break the same way)."""
  examples = {ex["file_name"]: ex for ex in tiny_tfds.generated(split)}
  order = ([ex["id"].numpy().decode() for ex in tfds_source.examples(source)] if source
           else list(examples))
  with tf.io.TFRecordWriter(path) as w:
    for ex in (examples[name] for name in order):
      png = tf.io.encode_png(ex["image"]).numpy()
      w.write(schema.image_example(png, ex["captions"], ex["file_name"], ex["label"]))
  return path


class MeanColorModel:
  """Image: its mean colour; text: the colour it names (+ a length-dependent nudge)."""

  def encode_image(self, images, training=False):
    return tf.math.l2_normalize(tf.reduce_mean(images, [1, 2]) + 0.01, -1)

  def encode_text(self, texts, training=False):
    rows = []
    for t in texts.numpy():
      t = t.decode()
      v = np.array([t.count("red"), t.count("green"), t.count("blue")], np.float32) + 0.1
      v[len(t) % 3] += 0.2
      rows.append(v / np.linalg.norm(v))
    return tf.constant(np.stack(rows))


def test_evaluators_on_tfds_equal_the_same_examples_in_tfrecords(prepared, tmp_path):
  prefix, data_dir = prepared
  source = f"{prefix}:test@{data_dir}"
  records = _as_tfrecords(str(tmp_path / "test.tfrecord"), "test")
  names = ["red square", "green circle", "blue bar"]
  on_tfds = evaluators.evaluate(evaluators.build({
      "ret": {"type": "retrieval", "data": source},
      "zs": {"type": "zero_shot", "data": source},  # classes: the dataset's own label names
  }, 8), MeanColorModel())
  on_records = evaluators.evaluate(evaluators.build({
      "ret": {"type": "retrieval", "data": records},
      "zs": {"type": "zero_shot", "data": records, "classes": names},
  }, 8), MeanColorModel())
  for name in ("ret", "zs"):
    got = {k: v for k, v in on_tfds[name].items() if k != "data"}
    want = {k: v for k, v in on_records[name].items() if k != "data"}
    assert got == want, name
  assert on_tfds["zs"]["classes"] == 3 and on_tfds["ret"]["captions"] == 15
  assert on_tfds["zs"]["images"] == on_tfds["ret"]["images"] == 10


def test_missing_datasets_are_named(prepared, tmp_path):
  prefix, _ = prepared
  with pytest.raises(errors.NoFilesError, match=r"cannot be read.*tfds build lit_tiny_captions"):
    list(pipeline.eval_examples(f"{prefix}:test@{tmp_path}"))
  with pytest.raises(errors.NoFilesError, match="no TFDS dataset 'no_such_set'"):
    pipeline.list_files("tfds:no_such_set:test")
  with pytest.raises(ValueError, match="expected tfds:NAME"):
    tfds_source.parse_source("tfds:cifar100")
  assert tfds_source.parse_source("tfds:imagenet_v2/matched-frequency:3.0.0:test[:10%]@gs://b/d") \
      == ("imagenet_v2/matched-frequency:3.0.0", "test[:10%]", "gs://b/d")


def _random_examples(features, num_examples):
  """TFDS's random example generator, made consistent for nested sequences: one length for every
  field of a sequence (its own `constant_dynamic_shape`), boxes ordered min ≤ max, bytes."""
  generator = mocking.RandomFakeGenerator(features, num_examples=num_examples,
                                          num_sub_examples=3, constant_dynamic_shape=True)

  def fix(value, feature):
    if isinstance(feature, tfds.features.FeaturesDict):
      return {k: fix(value[k], feature[k]) for k in value}
    if isinstance(feature, tfds.features.Sequence):
      return fix(value, feature.feature)
    value = np.asarray(value)
    if isinstance(feature, tfds.features.BBoxFeature):
      value = np.concatenate([np.minimum(value[..., :2], value[..., 2:]),
                              np.maximum(value[..., :2], value[..., 2:])], -1)
    if value.dtype.kind == "U":
      value = np.array([v.encode() for v in value.ravel()], object).reshape(value.shape)
    return value

  return [fix(ex, features) for ex in generator]


@pytest.fixture
def mock_tfds():
  """TFDS's mock data: a dataset's own features filled with random values, no files. Its
  `as_dataset_fn` serves the examples, images PNG-encoded when the reader skips their decoding
  (as TFDS stores them)."""

  def as_dataset(self, split, decoders=None, read_config=None, **kwargs):
    del split, kwargs
    examples = _random_examples(self.info.features, 6)
    ds = tf.data.Dataset.from_generator(lambda: iter(examples),
                                        output_signature=self.info.features.get_tensor_spec())
    if decoders and "image" in decoders:
      ds = ds.map(lambda ex: {**ex, "image": tf.io.encode_png(ex["image"])})
    if read_config and read_config.add_tfds_id:
      ds = ds.enumerate().map(lambda i, ex: {**ex, "tfds_id": tf.strings.as_string(i)})
    return ds

  with tfds.testing.mock_data(as_dataset_fn=as_dataset):
    tfds_source.layout.cache_clear()
    yield
  tfds_source.layout.cache_clear()


def _own_decoding(name, split):
  return list(tfds.as_numpy(tfds.builder(name).as_dataset(split=split, shuffle_files=False)))


def test_mock_cifar100_maps_image_label_and_class_caption(mock_tfds):
  source = "tfds:cifar100:test"
  assert tfds_source.layout(source)["texts"] == [] and tfds_source.layout(source)["id"] == "id"
  names = tfds_source.class_names(source)
  want = _own_decoding("cifar100", "test")
  got = list(pipeline.eval_examples(source))
  assert len(got) == len(want) == 6
  for ex, ref in zip(got, want):
    np.testing.assert_array_equal(_decoded(ex["image"].numpy()), ref["image"])
    assert int(ex["label"]) == ref["label"]
    assert [t.decode() for t in ex["texts"].numpy()] == [names[ref["label"]]]
    assert ex["id"].numpy() == ref["id"]


def test_mock_coco_captions_maps_every_caption(mock_tfds):
  source = "tfds:coco_captions:val"
  lay = tfds_source.layout(source)
  assert lay["texts"] == ["captions/text"] and lay["label"] is None
  assert lay["id"] == "image/id"
  want = _own_decoding("coco_captions", "val")
  got = list(pipeline.eval_examples(source))
  assert len(got) == len(want) == 6
  for ex, ref in zip(got, want):
    np.testing.assert_array_equal(_decoded(ex["image"].numpy()), ref["image"])
    assert list(ex["texts"].numpy()) == [b" ".join(t.split()) for t in ref["captions"]["text"]]
    assert int(ex["label"]) == -1 and ex["id"].numpy() == str(ref["image/id"]).encode()


def test_imagenet_wordnet_ids_become_the_shipped_class_names():
  """ImageNet-1k and ImageNet-v2 label WordNet ids (TFDS's own label files); zero-shot reads
  them as the 1,000 class names the package ships, in the same order."""
  for source in ("tfds:imagenet2012:validation", "tfds:imagenet_v2/matched-frequency:test"):
    names = tfds_source.class_names(source)
    assert names == prompts.imagenet1k_classes(), source
    assert tfds.builder(source[5:].split(":")[0]).info.features["label"].names[285] == "n02124075"
  assert names[285] == "Egyptian cat"
