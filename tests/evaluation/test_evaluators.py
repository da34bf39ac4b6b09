"""Evaluators built from specs: one embedding pass per set, metrics against brute force, files,
bad specs and corrupt data answered clearly."""
import io
import os

import numpy as np
from PIL import Image
import pytest
import tensorflow as tf

from lit_keras.data import pipeline
from lit_keras.data import schema
from lit_keras.evaluation import embed
from lit_keras.evaluation import evaluators

CLASSES = ["red", "green", "blue"]


class ColorModel:
  """Embeds an image as its mean colour and a text as the colour it names (noisy), so that
  retrieval and zero-shot have non-trivial, hand-checkable answers. Counts its calls."""

  def __init__(self):
    self.image_calls = 0

  def encode_image(self, images, training=False):
    self.image_calls += 1
    x = tf.reduce_mean(tf.convert_to_tensor(images), axis=[1, 2]) + 0.01
    return tf.math.l2_normalize(x, axis=-1)

  def encode_text(self, texts, training=False):
    rows = []
    for t in texts.numpy():
      t = t.decode()
      v = np.array([t.count("red"), t.count("green"), t.count("blue")], np.float32) + 0.05
      v[len(t) % 3] += 0.3  # text length shifts it a little: not every caption is perfect
      rows.append(v / np.linalg.norm(v))
    return tf.constant(np.stack(rows))


def _png(rgb):
  buf = io.BytesIO()
  Image.fromarray(np.full((6, 6, 3), rgb, np.uint8)).save(buf, format="PNG")
  return buf.getvalue()


@pytest.fixture
def color_set(tmp_path):
  rng = np.random.default_rng(0)
  colors = {0: (230, 20, 20), 1: (20, 230, 20), 2: (20, 20, 230)}
  path = str(tmp_path / "colors.tfrecord")
  truth = []
  with tf.io.TFRecordWriter(path) as w:
    for i in range(12):
      label = int(rng.integers(0, 3))
      rgb = tuple(int(np.clip(c + rng.integers(-15, 15), 0, 255)) for c in colors[label])
      texts = [f"a {CLASSES[label]} square", f"{CLASSES[(label + i) % 3]} thing"]
      w.write(schema.image_example(_png(rgb), texts, f"im{i}", label))
      truth.append((rgb, texts, label))
  return path, truth


def test_build_skips_sets_without_data_and_rejects_bad_specs():
  specs = {"r": {"type": "retrieval", "data": ""},
           "z": {"type": "zero_shot", "data": "", "classes": CLASSES}}
  assert evaluators.build(specs, 8) == []
  with pytest.raises(ValueError, match="unknown type 'recall'.*retrieval"):
    evaluators.build({"x": {"type": "recall", "data": "a"}}, 8)
  with pytest.raises(ValueError, match="needs `classes`"):
    evaluators.build({"x": {"type": "zero_shot", "data": "a"}}, 8)


def test_one_pass_per_set_and_metrics_against_brute_force(color_set, tmp_path):
  path, truth = color_set
  model = ColorModel()
  evals = evaluators.build({
      "ret": {"type": "retrieval", "data": path},
      "zs": {"type": "zero_shot", "data": path, "classes": CLASSES,
             "templates": ["a {} square", "{}"]},
  }, image_size=6)
  results = evaluators.evaluate(evals, model, out_dir=str(tmp_path))
  assert model.image_calls == 1  # both evaluators read one embedding pass

  # Brute force from the raw colours and captions, without the library's pipeline.
  img = np.stack([np.array(rgb, np.float32) / 255.0 + 0.01 for rgb, _, _ in truth])
  img /= np.linalg.norm(img, axis=1, keepdims=True)
  captions = [t for _, texts, _ in truth for t in texts]
  owner = np.repeat(np.arange(len(truth)), 2)
  txt = model.encode_text(tf.constant(captions)).numpy()
  sims = img @ txt.T
  i2t = np.mean([i in owner[np.argsort(-sims[i])[:1]] for i in range(len(img))])
  t2i = np.mean([np.argmax(sims[:, j]) == owner[j] for j in range(len(captions))])
  assert results["ret"]["i2t_r@1"] == pytest.approx(i2t, abs=1e-6)
  assert results["ret"]["t2i_r@1"] == pytest.approx(t2i, abs=1e-6)
  assert results["ret"]["images"] == 12 and results["ret"]["captions"] == 24

  prompts = [[f"a {c} square", c] for c in CLASSES]
  cls = np.stack([model.encode_text(tf.constant(p)).numpy().mean(0) for p in prompts])
  cls /= np.linalg.norm(cls, axis=1, keepdims=True)
  labels = np.array([lab for _, _, lab in truth])
  pred = np.argmax(img @ cls.T, axis=1)
  assert results["zs"]["top1"] == pytest.approx(np.mean(pred == labels), abs=1e-6)
  assert results["zs"]["majority_baseline"] == pytest.approx(
      np.bincount(labels).max() / len(labels))
  assert (results["zs"]["classes"], results["zs"]["templates"]) == (3, 2)

  png = results["zs"]["files"]["confusion_png"]
  html = results["ret"]["files"]["gallery_html"]
  assert open(png, "rb").read(4) == b"\x89PNG" and os.path.dirname(png) == str(tmp_path)
  assert "a red square" in open(html, encoding="utf-8").read()


def test_gallery_thumbnails_are_each_images_own_colour_in_file_order(color_set):
  path, truth = color_set
  out = embed.embed_eval_set(ColorModel(), path, image_size=6, thumbnail_size=5, batch_size=5)
  assert out["thumbs"].dtype == np.uint8 and out["thumbs"].shape == (12, 5, 5, 3)
  # A one-colour PNG stays that colour when shrunk: each thumbnail is its own image's RGB.
  want = np.stack([np.full((5, 5, 3), rgb, np.uint8) for rgb, _, _ in truth])
  np.testing.assert_array_equal(out["thumbs"], want)
  assert out["ids"] == [f"im{i}" for i in range(12)]
  assert out["texts"] == [t for _, texts, _ in truth for t in texts]


def test_captions_are_embedded_in_batches_of_at_least_256(color_set):
  path, truth = color_set
  seen = []

  class Recording(ColorModel):
    def encode_text(self, texts, training=False):
      seen.append(int(texts.shape[0]))
      return super().encode_text(texts, training)

  default = embed.embed_eval_set(Recording(), path, image_size=6, batch_size=5)
  assert seen == [256]  # 24 captions, padded to one batch of 256 (images: batches of 5)
  seen.clear()
  small = embed.embed_eval_set(Recording(), path, image_size=6, batch_size=5, text_batch_size=10)
  assert seen == [10, 10, 10]
  np.testing.assert_array_equal(small["text_emb"], default["text_emb"])
  assert len(default["text_emb"]) == 24


def test_labels_outside_the_class_list_are_refused(color_set):
  path, _ = color_set
  evals = evaluators.build({"zs": {"type": "zero_shot", "data": path,
                                   "classes": CLASSES[:2]}}, 6)
  with pytest.raises(ValueError, match="labels must index the 2 classes"):
    evaluators.evaluate(evals, ColorModel())


def test_zero_shot_leaves_unlabelled_images_out(color_set, tmp_path):
  """The same set with a third of its images unlabelled (−1): top-1 over the labelled ones only,
  as NumPy computes it from the colours; the unlabelled are counted."""
  _, truth = color_set
  path = str(tmp_path / "partly_labelled.tfrecord")
  with tf.io.TFRecordWriter(path) as w:
    for i, (rgb, texts, label) in enumerate(truth):
      w.write(schema.image_example(_png(rgb), texts, f"im{i}", None if i % 3 == 0 else label))
  model = ColorModel()
  zs = evaluators.evaluate(evaluators.build(
      {"zs": {"type": "zero_shot", "data": path, "classes": CLASSES}}, 6), model)["zs"]
  kept = [(rgb, label) for i, (rgb, _, label) in enumerate(truth) if i % 3]
  img = np.stack([np.array(rgb, np.float32) / 255.0 + 0.01 for rgb, _ in kept])
  img /= np.linalg.norm(img, axis=1, keepdims=True)
  cls = model.encode_text(tf.constant(CLASSES)).numpy()
  pred = np.argmax(img @ cls.T, axis=1)
  assert (zs["images"], zs["unlabelled"]) == (8, 4)
  assert zs["top1"] == pytest.approx(np.mean(pred == [lab for _, lab in kept]), abs=1e-6)


def test_corrupt_set_is_named(color_set):
  path, _ = color_set
  data = bytearray(open(path, "rb").read())
  data[40] ^= 0xFF
  open(path, "wb").write(bytes(data))
  evals = evaluators.build({"ret": {"type": "retrieval", "data": path}}, 6)
  with pytest.raises(pipeline.CorruptDataError, match="colors.tfrecord"):
    evaluators.evaluate(evals, ColorModel())
