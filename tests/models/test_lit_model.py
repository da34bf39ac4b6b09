"""LiTModel: outputs, setting, config round trip and SavedModel round trip."""
import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from lit_keras import towers
from lit_keras.models import LiTModel
from tests import tiny_models


@pytest.mark.parametrize("setting", ["Lu", "LU", "Uu", "uu", "UL"])
def test_outputs_and_setting(image_module, vocab_file, bert_pair, setting):
  model = tiny_models.lit_model(setting, image_module, vocab_file, bert_pair=bert_pair)
  batch = tiny_models.random_batch(3, vocab_file, tokenize=False)
  out = model(batch)
  assert model.setting == setting
  assert out["zimg"].shape == (3, 8) and out["ztxt"].shape == (3, 8)
  np.testing.assert_allclose(np.linalg.norm(out["zimg"], axis=1), 1.0, rtol=1e-5)
  np.testing.assert_allclose(np.linalg.norm(out["ztxt"], axis=1), 1.0, rtol=1e-5)
  np.testing.assert_allclose(out["logit_scale"].numpy(), 10.0, rtol=1e-6)
  assert "logits" not in out
  np.testing.assert_allclose(model.encode_image(batch["image"]), out["zimg"], atol=1e-6)
  np.testing.assert_allclose(model.encode_text(batch["text"]), out["ztxt"], atol=1e-6)
  n_trainable_towers = sum(not t.locked for t in (model.image_tower, model.text_tower))
  assert bool(model.image_tower.trainable_weights) == (setting[0] != "L")
  assert bool(model.text_tower.trainable_weights) == (setting[1] != "L")
  assert n_trainable_towers == sum(c != "L" for c in setting)


def test_rejects_bad_inputs(image_module, vocab_file):
  model = tiny_models.lit_model("Lu", image_module, vocab_file)
  with pytest.raises(ValueError, match="'image' and 'text'"):
    model({"image": np.zeros([1, 16, 16, 3], np.float32)})


def test_sigmoid_model_has_bias(image_module, vocab_file):
  model = tiny_models.lit_model("Lu", image_module, vocab_file, use_bias=True)
  out = model(tiny_models.random_batch(2, vocab_file))
  np.testing.assert_allclose(out["logit_bias"].numpy(), -10.0)


def _copy_and_compare(model, clone, batch):
  model(batch)
  clone(batch)
  clone.set_weights(model.get_weights())
  a, b = model(batch), clone(batch)
  for k in ("zimg", "ztxt", "logit_scale"):
    np.testing.assert_allclose(a[k].numpy(), b[k].numpy(), atol=1e-6)


@pytest.mark.parametrize("setting", ["Lu", "UL", "uu"])
def test_config_round_trip(image_module, vocab_file, bert_pair, setting):
  model = tiny_models.lit_model(setting, image_module, vocab_file, bert_pair=bert_pair)
  config = model.get_config()
  # A hub tower serialises its handle, never its weights.
  if setting[0] != "u":
    assert config["image_tower"]["config"]["handle"] == image_module
  clone = LiTModel.from_config(config)
  assert clone.get_config() == config
  assert clone.setting == setting
  _copy_and_compare(model, clone, tiny_models.random_batch(4, vocab_file, tokenize=False))


def test_serialize_deserialize_registered(image_module, vocab_file):
  model = tiny_models.lit_model("Lu", image_module, vocab_file)
  clone = tf_keras.layers.deserialize(tf_keras.layers.serialize(model))
  assert isinstance(clone, LiTModel)
  assert isinstance(clone.text_tower, towers.BertTextTower)
  assert isinstance(clone.text_tower.tokenizer, towers.WordPieceTokenizer)


@pytest.mark.parametrize("setting", ["Lu", "UL"])
def test_savedmodel_round_trip(tmp_path, image_module, vocab_file, bert_pair, setting):
  model = tiny_models.lit_model(setting, image_module, vocab_file, bert_pair=bert_pair)
  batch = tiny_models.random_batch(4, vocab_file, tokenize=False)
  model(batch)
  # Change a weight so the reload must restore trained, not initial, values.
  model.image_head.weights[0].assign(model.image_head.weights[0] * 2.0)
  out = model(batch)
  path = str(tmp_path / "lit")
  model.save(path, save_format="tf")
  reloaded = tf_keras.models.load_model(path)
  assert isinstance(reloaded, LiTModel) and reloaded.setting == setting
  again = reloaded(batch)
  for k in ("zimg", "ztxt", "logit_scale"):
    np.testing.assert_allclose(out[k].numpy(), again[k].numpy(), atol=1e-5)
  np.testing.assert_allclose(reloaded.encode_text(tf.constant(batch["text"])), out["ztxt"],
                             atol=1e-5)
