"""Trained towers exported in the TF-Hub interfaces load back as hub towers, frozen or trainable,
and compute exactly what the towers computed."""
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_hub as hub
import tf_keras

from lit_keras import towers
from lit_keras.export import tfhub_format
from tests import tiny_models

TEXTS = ["a photo of the digit three", "an IMAGE of a cat !", "", "espresso cup , coffee",
         "invalid \xff utf8".encode("latin-1")]


def _perturb(layer):
  """Moves every weight, so that the export must carry trained (not initial) values."""
  for v in layer.trainable_weights:
    v.assign(v + tf.random.stateless_normal(v.shape, [1, 2], stddev=0.05, dtype=v.dtype))


@pytest.mark.parametrize("kind", ["vit", "hub"])
def test_image_tower_round_trip(tmp_path, image_module, kind):
  if kind == "vit":
    tower = tiny_models.scratch_image_tower()
  else:
    tower = towers.HubImageTower(image_module, state="U", image_size=tiny_models.IMAGE_SIZE)
  x = tf.random.stateless_uniform([3, 16, 16, 3], [3, 4])
  tower(x)
  _perturb(tower)
  want = tower(x, training=False).numpy()
  path = tfhub_format.export_image_tower(tower, str(tmp_path / "image"))
  frozen = towers.HubImageTower(path, state="L", image_size=16)
  np.testing.assert_allclose(frozen(x).numpy(), want, atol=1e-5)
  trainable = towers.HubImageTower(path, state="U", image_size=16)
  trainable(x)
  assert len(trainable.trainable_weights) == len(tower.trainable_weights) > 0


def _conv_bn_model():
  L = tf_keras.layers
  images = tf_keras.Input([8, 8, 3])
  x = L.BatchNormalization(momentum=0.5)(L.Conv2D(4, 3, padding="same", use_bias=False)(images))
  return tf_keras.Model(images, L.GlobalAveragePooling2D()(L.ReLU(6.0)(x)))


def test_feature_vector_is_a_reusable_saved_model_that_trains_batchnorm(tmp_path):
  """The export is TF-Hub's reusable SavedModel (one `__call__` with `training`, the variable
  lists), not the Keras layers: frozen it computes the model's inference, trainable with
  training=True it normalises with batch statistics and moves the moving averages as the Keras
  model itself does."""
  tf_keras.utils.set_random_seed(0)
  model = _conv_bn_model()
  x = tf.random.stateless_uniform([5, 8, 8, 3], [5, 6])
  path = tfhub_format.export_image_feature_vector(model, str(tmp_path / "fv"))
  loaded = tf.saved_model.load(path)
  assert not hasattr(loaded, "keras_api") and not hasattr(loaded, "layers")
  assert len(loaded.variables) == len(model.variables) == 5
  assert len(loaded.trainable_variables) == 3 and list(loaded.regularization_losses) == []
  np.testing.assert_allclose(hub.KerasLayer(path)(x).numpy(), model(x, training=False).numpy(),
                             atol=1e-6)
  layer = hub.KerasLayer(path, trainable=True)
  layer(x[:1])  # builds
  mean = next(v for v in layer.variables if "moving_mean" in v.name)
  bn = model.layers[2]
  np.testing.assert_array_equal(mean.numpy(), bn.moving_mean.numpy())  # zeros, both
  got = layer(x, training=True).numpy()
  want = model(x, training=True).numpy()  # batch statistics; updates the model's own averages
  np.testing.assert_allclose(got, want, atol=1e-6)
  assert np.abs(mean.numpy()).max() > 1e-3
  np.testing.assert_allclose(mean.numpy(), bn.moving_mean.numpy(), atol=1e-6)


def test_feature_vector_refuses_a_model_with_regularization_losses(tmp_path):
  images = tf_keras.Input([4])
  model = tf_keras.Model(images, tf_keras.layers.Dense(
      2, kernel_regularizer=tf_keras.regularizers.L2(0.1))(images))
  with pytest.raises(ValueError, match="regularization losses"):
    tfhub_format.export_image_feature_vector(model, str(tmp_path / "fv"))
  assert not tf.io.gfile.exists(str(tmp_path / "fv"))


def _sentencepiece(tmp_path):
  import sentencepiece as spm
  corpus = ["a photo of a dog", "犬の写真", "صورة كلب", "a photo of a cat", "猫の写真"] * 30
  spm.SentencePieceTrainer.train(sentence_iterator=iter(corpus),
                                 model_prefix=str(tmp_path / "sp"), vocab_size=26, pad_id=0,
                                 unk_id=1, bos_id=2, eos_id=3, character_coverage=1.0,
                                 minloglevel=2)
  return towers.SentencePieceTokenizer(str(tmp_path / "sp.model"), seq_length=12)


@pytest.mark.parametrize("kind", ["wordpiece", "sentencepiece", "hub"])
def test_text_tower_round_trip(tmp_path, vocab_file, bert_pair, kind):
  if kind == "hub":
    tower = towers.HubBertTextTower(*bert_pair, state="U", pooling="mean")
  else:
    tok = (towers.WordPieceTokenizer(vocab_file, seq_length=16) if kind == "wordpiece"
           else _sentencepiece(tmp_path))
    tower = towers.BertTextTower(tok, hidden_size=16, num_layers=1, num_heads=2, inner_dim=32,
                                 pooling="cls")
  texts = tf.constant(TEXTS + ["犬の写真"])
  tower(texts)
  _perturb(tower)
  want = tower(texts, training=False).numpy()
  pre, enc = tfhub_format.export_text_tower(tower, str(tmp_path / "text"))
  seq_length = tower.preprocessing()[4]
  frozen = towers.HubBertTextTower(pre, enc, state="L", pooling=tower.pooling,
                                   seq_length=seq_length)
  for key, value in frozen.tokenize(texts).items():  # the same tokenization, exactly
    np.testing.assert_array_equal(value.numpy(), tower.tokenize(texts)[key].numpy(), key)
  np.testing.assert_allclose(frozen(texts).numpy(), want, atol=1e-5)
  trainable = towers.HubBertTextTower(pre, enc, state="U", pooling=tower.pooling,
                                      seq_length=seq_length)
  trainable(texts)
  assert trainable.trainable_weights
  if kind != "hub":
    # The tower's own encoder computes its last block for [CLS] alone; the export keeps the
    # TF-Hub interface, every token in `sequence_output`: equal to a mean-pooling tower's
    # encoder (which computes every token) holding the same weights.
    inputs = tower.tokenize(texts)
    assert tower.encoder(inputs)["sequence_output"].shape[1] == 1
    full = towers.BertTextTower(tok, hidden_size=16, num_layers=1, num_heads=2, inner_dim=32,
                                pooling="mean")
    full(texts)
    full.set_weights(tower.get_weights())
    got = hub.load(enc)(inputs)["sequence_output"].numpy()
    assert got.shape == (len(TEXTS) + 1, seq_length, 16)
    np.testing.assert_allclose(got, full.encoder(inputs)["sequence_output"].numpy(), atol=1e-6)


def test_rejects_an_image_tower_as_text(image_module, tmp_path):
  with pytest.raises(TypeError, match="text tower"):
    tfhub_format.export_text_tower(towers.HubImageTower(image_module), str(tmp_path))
