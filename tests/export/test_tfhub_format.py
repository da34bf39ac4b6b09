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
