"""Zero-shot and retrieval metrics against brute-force NumPy references."""
import re

import numpy as np
import pytest

from lit_keras import evaluation
from lit_keras.evaluation import prompts
from lit_keras.evaluation import report


def _normed(x):
  return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


class FakeModel:
  """encode_text from a fixed table, so the ensemble arithmetic is checked exactly."""

  def __init__(self, table):
    self.table = table

  def encode_text(self, texts, training=False):
    import tensorflow as tf
    return tf.constant(np.stack([self.table[t.decode() if isinstance(t, bytes) else t]
                                 for t in texts.numpy()]))

  def encode_image(self, images, training=False):
    import tensorflow as tf
    return tf.constant(images)


def test_prompt_ensemble_averages_normalised_embeddings():
  rng = np.random.default_rng(0)
  classes = ["cat", ["dog", "puppy"]]  # the second class has an alias
  templates = ["a {}", "the {}."]
  prompts = [t.format(n) for n in ["cat", "dog", "puppy"] for t in templates]
  table = {p: _normed(rng.normal(size=4)) for p in prompts}
  emb = evaluation.class_embeddings(FakeModel(table), classes, templates)
  cat = _normed(np.mean([table["a cat"], table["the cat."]], 0))
  dog = _normed(np.mean([table[p] for p in prompts[2:]], 0))
  np.testing.assert_allclose(emb, np.stack([cat, dog]), atol=1e-6)


def test_zero_shot_accuracy_matches_numpy():
  rng = np.random.default_rng(1)
  img, cls = _normed(rng.normal(size=(50, 8))), _normed(rng.normal(size=(7, 8)))
  labels = rng.integers(0, 7, 50)
  metrics, preds = evaluation.zero_shot_accuracy(FakeModel({}), img, labels, cls, batch_size=16)
  scores = img @ cls.T
  np.testing.assert_array_equal(preds, scores.argmax(1))
  assert metrics["top1"] == pytest.approx((scores.argmax(1) == labels).mean())
  top5 = np.argsort(-scores, 1)[:, :5]
  assert metrics["top5"] == pytest.approx(np.mean([l in t for l, t in zip(labels, top5)]))
  again, _ = evaluation.zero_shot_accuracy(None, None, labels, cls, image_emb=img)
  assert again == metrics


def test_recall_matches_brute_force_with_several_captions():
  rng = np.random.default_rng(2)
  n_img = 30
  owner = np.repeat(np.arange(n_img), rng.integers(1, 5, n_img))
  img = _normed(rng.normal(size=(n_img, 6)))
  txt = _normed(img[owner] + rng.normal(scale=0.9, size=(len(owner), 6)))
  got = evaluation.recall_at_k(img, txt, owner, ks=(1, 5, 10), chunk=7)
  sims = img @ txt.T
  for k in (1, 5, 10):
    i2t = np.mean([owner[np.argsort(-sims[i])[:k]].tolist().count(i) > 0 for i in range(n_img)])
    t2i = np.mean([j_img in np.argsort(-sims[:, j])[:k] for j, j_img in enumerate(owner)])
    assert got[f"i2t_r@{k}"] == pytest.approx(i2t)
    assert got[f"t2i_r@{k}"] == pytest.approx(t2i)
  assert 0 < got["i2t_r@1"] < got["i2t_r@10"] <= 1


def test_confusion_matrix_and_files(tmp_path):
  labels, preds = np.array([0, 0, 1, 2, 2, 2]), np.array([0, 1, 1, 2, 0, 2])
  cm = report.confusion_matrix(labels, preds, 4)
  assert cm.tolist() == [[1, 1, 0, 0], [0, 1, 0, 0], [1, 0, 2, 0], [0, 0, 0, 0]]
  acc = report.per_class_accuracy(cm)
  np.testing.assert_allclose(acc[:3], [0.5, 1.0, 2 / 3])
  assert np.isnan(acc[3])  # a class with no examples has no accuracy
  png = report.plot_confusion(cm, ["a", "b", "c", "d"], str(tmp_path / "cm.png"), "t")
  assert open(png, "rb").read(4) == b"\x89PNG"
  rng = np.random.default_rng(3)
  img, txt = _normed(rng.normal(size=(4, 3))), _normed(rng.normal(size=(6, 3)))
  html = report.retrieval_gallery(str(tmp_path / "g.html"), "gallery", [f"t{i}" for i in range(6)],
                                  rng.uniform(size=(4, 8, 8, 3)), img, txt,
                                  ["c0", "c1", "c2", "c3"], [(0, 0), (5, 3)], k=3)
  text = open(html).read()
  # Two text queries × 3 images, plus the 2 image queries' own thumbnails.
  assert text.count("<img src='data:image/png;base64,") == 2 * 3 + 2
  # Each image query lists the top-3 captions by cosine similarity (NumPy), best first.
  for target in (0, 3):
    sims = txt @ img[target]
    want = "".join(f"<li>t{j} ({sims[j]:.2f})</li>" for j in np.argsort(-sims)[:3])
    assert f"<ol>{want}</ol>" in text, target
  # Each text query's top-3 images, scores in descending order, the true match outlined green.
  for q, target in ((0, 0), (5, 3)):
    sims = img @ txt[q]
    top = np.argsort(-sims)[:3]
    row = text.split(f"<tr><td><b>t{q}</b></td>")[1].split("</tr>")[0]
    assert [f"{float(x):.2f}" for x in re.findall(r"<br>(-?\d\.\d\d)</td>", row)] == [
        f"{sims[i]:.2f}" for i in top]
    assert row.count("#2a2") == int(target in top)


def test_shipped_class_names_and_templates():
  assert len(prompts.imagenet1k_classes()) == 1000
  assert prompts.imagenet1k_classes()[285] == "Egyptian cat"
  clip = prompts.clip_templates()
  assert len(clip) == 80 and clip[0] == "a bad photo of a {}." and all("{}" in t for t in clip)
  assert len(prompts.clip_templates_short()) == 7
