"""The few-shot probe: big_vision's closed-form least squares against scikit-learn's ridge
regression, the shot-drawing protocol, and the evaluator on a model's features and embeddings."""
import io

import numpy as np
from PIL import Image
import pytest
from sklearn import linear_model
import tensorflow as tf
import tf_keras

from lit_keras.data import schema
from lit_keras.evaluation import evaluators
from lit_keras.evaluation import fewshot


def _ridge_predict(x, y, x_test, num_classes, l2):
  """The reference: whiten with the training set's statistics, a constant-100 bias column, ±1
  one-hot targets, scikit-learn's ridge regression without intercept."""
  mean, std = x.mean(0), x.std(0) + 1e-5
  pad = lambda a: np.hstack([(a - mean) / std, np.full((len(a), 1), 100.0)])
  targets = 2.0 * np.eye(num_classes)[y] - 1.0
  ridge = linear_model.Ridge(alpha=l2, fit_intercept=False, solver="svd").fit(pad(x), targets)
  return np.argmax(ridge.predict(pad(x_test)), 1), ridge.coef_.T


@pytest.mark.parametrize("n,d", [(60, 7), (9, 40)])  # xᵀx (n ≥ d) and xxᵀ (n < d) branches
@pytest.mark.parametrize("l2", [1e-3, 1.0, 2.0 ** 10])
def test_lsr_probe_equals_ridge_regression(n, d, l2):
  rng = np.random.default_rng(n + d)
  centers = rng.normal(0, 1.5, (4, d))
  y = np.arange(n) % 4
  x = centers[y] + rng.normal(0, 1, (n, d))
  y_test = rng.integers(0, 4, 200)
  x_test = centers[y_test] + rng.normal(0, 1, (200, d))
  predict = fewshot.lsr_classifier(x, y, 4, l2)
  want, weights = _ridge_predict(x, y, x_test, 4, l2)
  np.testing.assert_allclose(predict.weights, weights, rtol=1e-7, atol=1e-10)
  np.testing.assert_array_equal(predict(x_test), want)


def test_fewshot_accuracy_follows_the_shot_protocol():
  rng = np.random.default_rng(0)
  centers = rng.normal(0, 1, (5, 16))
  y_train = rng.integers(0, 5, 300)
  x_train = centers[y_train] + rng.normal(0, 1.2, (300, 16))
  y_test = np.concatenate([rng.integers(0, 5, 150), [-1, -1]])  # unlabelled rows: ignored
  x_test = centers[np.maximum(y_test, 0)] + rng.normal(0, 1.2, (152, 16))
  got = fewshot.fewshot_accuracy(x_train, y_train, x_test, y_test, shots=(1, 5, 25), seeds=3,
                                 l2_reg=2.0 ** 10)
  for k in (1, 5, 25):
    want = []
    for seed in range(3):  # big_vision: per seed, each class's indices permuted, first k taken
      rng_s = np.random.default_rng(seed)
      idx = np.concatenate([rng_s.permutation(np.flatnonzero(y_train == c))[:k]
                            for c in range(5)])
      pred, _ = _ridge_predict(x_train[idx], y_train[idx], x_test[:150], 5, 2.0 ** 10)
      want.append(float(np.mean(pred == y_test[:150])))
    assert got[k] == want, k
  assert len(set(got[1])) > 1  # the seeds draw different shots


def _png(rgb, size=6):
  buf = io.BytesIO()
  Image.fromarray(np.full((size, size, 3), rgb, np.uint8)).save(buf, format="PNG")
  return buf.getvalue()


class MeanColorModel:
  """A model with the LiTModel surface the probe needs: an image tower (mean colour and its
  square: 6 features), a projection head (Dense 6 → 4) and `encode_image` through both."""

  def __init__(self):
    self.image_tower = tf_keras.layers.Lambda(
        lambda x: tf.concat([tf.reduce_mean(x, [1, 2]), tf.reduce_mean(x, [1, 2]) ** 2], -1))
    self.image_head = tf_keras.layers.Dense(
        4, kernel_initializer=tf_keras.initializers.RandomNormal(seed=1))
    self.tower_calls = 0

  def encode_image(self, images, training=False):
    raise AssertionError("with features probed, the tower runs once and embeddings come from "
                         "its output")

  def encode_text(self, texts, training=False):
    return tf.math.l2_normalize(tf.ones([len(texts), 4]), -1)


def _write(path, n, seed):
  rng = np.random.default_rng(seed)
  colors = np.array([(200, 40, 40), (40, 200, 40), (40, 40, 200)])
  truth = []
  with tf.io.TFRecordWriter(path) as w:
    for i in range(n):
      label = int(rng.integers(0, 3))
      rgb = np.clip(colors[label] + rng.integers(-90, 90, 3), 0, 255).astype(np.uint8)
      w.write(schema.image_example(_png(rgb), [f"thing {i}"], f"{seed}-{i}", label))
      truth.append((rgb, label))
  return truth


def test_fewshot_evaluator_probes_features_and_embeddings(tmp_path):
  train_truth = _write(str(tmp_path / "train.tfrecord"), 60, 0)
  test_truth = _write(str(tmp_path / "test.tfrecord"), 40, 1)
  model = MeanColorModel()
  evals = evaluators.build({"probe": {
      "type": "fewshot", "data": str(tmp_path / "test.tfrecord"),
      "train_data": str(tmp_path / "train.tfrecord"), "shots": [1, 2, 5], "seeds": 2,
      "l2_reg": 0.5}}, image_size=6)
  got = evaluators.evaluate(evals, model)["probe"]

  def reference(truth):  # features computed from the pixel values, outside TensorFlow
    rgb = np.array([t[0] for t in truth], np.float64) / 255.0
    feats = np.hstack([rgb, rgb ** 2])
    z = feats @ model.image_head.kernel.numpy() + model.image_head.bias.numpy()
    return feats, z / np.linalg.norm(z, axis=1, keepdims=True), np.array([t[1] for t in truth])

  (f_tr, e_tr, y_tr), (f_te, e_te, y_te) = reference(train_truth), reference(test_truth)
  for rep, (x_tr, x_te) in {"features": (f_tr, f_te), "embedding": (e_tr, e_te)}.items():
    want = fewshot.fewshot_accuracy(x_tr, y_tr, x_te, y_te, (1, 2, 5), 2, 0.5)
    for k in (1, 2, 5):
      assert got[f"{rep}_{k}shot"] == pytest.approx(np.mean(want[k]), abs=1e-12), (rep, k)
  assert got["images"] == 40 and got["train_images"] == 60 and got["seeds"] == 2
  assert got["features_5shot"] > 0.6  # the colours separate: a probe that learns nothing fails


def test_fewshot_specs_are_checked():
  with pytest.raises(ValueError, match="needs `train_data`"):
    evaluators.build({"p": {"type": "fewshot", "data": "a"}}, 8)
  with pytest.raises(ValueError, match=r"representations \['pixels'\]"):
    evaluators.build({"p": {"type": "fewshot", "data": "a", "train_data": "b",
                            "representations": ["pixels"]}}, 8)
