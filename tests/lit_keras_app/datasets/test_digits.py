"""The digits dataset: real 8×8 scans written as TFRecords, registered with its assets."""
from lit_keras.data import pipeline
from lit_keras.evaluation import prompts
from lit_keras_app import datasets
from lit_keras_app.datasets import digits


def test_digits_records(tmp_path):
  summary = digits.build(str(tmp_path), num_shards=2)
  assert summary == {"train": 1400, "test": 397}
  n, labels = 0, set()
  for b in pipeline.eval_dataset(str(tmp_path / "test-*"), 128, 8):
    n += int(b["image"].shape[0])
    labels |= set(b["label"].numpy().tolist())
    assert (b["num_texts"].numpy() == 4).all()
  assert n == 397 and labels == set(range(10))


def test_registered_with_classes_templates_and_assets(tmp_path):
  ds = datasets.get("digits")
  assert prompts.class_names("digits") == list(digits.CLASS_NAMES)
  assert prompts.templates("digits") == list(digits.TEMPLATES)
  assets = ds.assets(str(tmp_path))
  vocab = open(assets["vocab"]).read().split()
  assert set(digits.CLASS_NAMES) <= set(vocab) and vocab[:4] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]"]
  # The image asset is a PCA of the training scans: |projections| equal scikit-learn's PCA
  # (component signs are arbitrary).
  from sklearn.decomposition import PCA
  import numpy as np
  import tensorflow_hub as hub
  train, _ = digits.load("train")
  test, _ = digits.load("test")
  ref = PCA(n_components=32).fit(train[..., 0].reshape(len(train), -1))
  want = ref.transform(test[:20, ..., 0].reshape(20, -1))
  got = hub.KerasLayer(assets["pca_feature_vector"])(test[:20]).numpy()
  np.testing.assert_allclose(np.abs(got), np.abs(want), atol=1e-4)
