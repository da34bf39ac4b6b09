"""Text towers and tokenizers: the BERT interface, pooling, and bad text."""
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_hub as hub
import tensorflow_text  # noqa: F401
import tf_keras

from lit_keras import towers
from tests import tiny_models

SENTENCES = ["a photo of the digit three", "An IMAGE of a cat!", "", "espresso cup , coffee",
             "handwritten numbers"]


def test_wordpiece_matches_hub_preprocessor(vocab_file, bert_pair):
  """Our tokenizer and tfm's exported preprocessor (same vocab) give identical BERT inputs."""
  ours = towers.WordPieceTokenizer(vocab_file, seq_length=16)(SENTENCES)
  theirs = hub.load(bert_pair[0])(tf.constant(SENTENCES))
  for key in ours:
    np.testing.assert_array_equal(ours[key].numpy(), theirs[key].numpy()[:, :16], err_msg=key)


def test_wordpiece_layout_and_bad_text(vocab_file):
  tok = towers.WordPieceTokenizer(vocab_file, seq_length=8)
  long_text = " ".join(["photo"] * 10_000)
  bad_utf8 = b"a \xff\xfe cat"
  out = tok(tf.constant([b"", long_text.encode(), bad_utf8, b"zzzz qqq"]))
  ids, mask = out["input_word_ids"].numpy(), out["input_mask"].numpy()
  assert ids.shape == mask.shape == (4, 8) and ids.dtype == np.int32
  cls, sep, unk, photo = (tiny_models.VOCAB.index(t) for t in ("[CLS]", "[SEP]", "[UNK]",
                                                                "photo"))
  np.testing.assert_array_equal(ids[0], [cls, sep, 0, 0, 0, 0, 0, 0])
  np.testing.assert_array_equal(ids[1], [cls] + [photo] * 6 + [sep])  # truncated, not an error
  assert mask[1].all() and mask[0].sum() == 2
  # Invalid UTF-8: the bad bytes become one [UNK] (as U+FFFD would), the valid words stay.
  a, cat = tiny_models.VOCAB.index("a"), tiny_models.VOCAB.index("cat")
  np.testing.assert_array_equal(ids[2], [cls, a, unk, cat, sep, 0, 0, 0])
  assert ids[3][1] == unk


def test_wordpiece_in_tf_data(vocab_file):
  tok = towers.WordPieceTokenizer(vocab_file, seq_length=16)
  ds = tf.data.Dataset.from_tensor_slices(SENTENCES).batch(2, drop_remainder=True).map(tok)
  shapes = [b["input_word_ids"].shape for b in ds]
  assert shapes == [(2, 16), (2, 16)]


def test_wordpiece_rejects_bad_vocab(tmp_path):
  path = tmp_path / "v.txt"
  path.write_text("[PAD]\n[UNK]\nhello\n")
  with pytest.raises(ValueError, match=r"\[CLS\]"):
    towers.WordPieceTokenizer(str(path))


@pytest.fixture(scope="module")
def sp_model(tmp_path_factory):
  import sentencepiece as spm
  corpus = ["a photo of a dog", "une photo d'un chien", "犬の写真", "صورة كلب", "ภาพถ่ายของสุนัข",
            "фотография собаки", "a photo of a cat", "猫の写真", "une photo d'un chat"] * 20
  prefix = str(tmp_path_factory.mktemp("sp") / "sp")
  spm.SentencePieceTrainer.train(sentence_iterator=iter(corpus), model_prefix=prefix,
                                 vocab_size=60, pad_id=0, unk_id=1, bos_id=2, eos_id=3,
                                 character_coverage=1.0, minloglevel=2)
  return prefix + ".model"


def test_sentencepiece_multilingual(sp_model):
  import sentencepiece as spm
  sp = spm.SentencePieceProcessor(model_file=sp_model)
  tok = towers.SentencePieceTokenizer(sp_model, seq_length=32)
  texts = ["犬の写真", "صورة كلب", "ภาพถ่ายของสุนัข", "a photo of a dog", ""]
  out = tok(texts)
  ids, mask = out["input_word_ids"].numpy(), out["input_mask"].numpy()
  assert ids.shape == (5, 32)
  for row, m, text in zip(ids, mask, texts):
    pieces = row[1:m.sum() - 1].tolist()
    assert row[0] == sp.bos_id() and row[m.sum() - 1] == sp.eos_id()
    assert pieces == sp.encode(text)  # nothing truncated at 32
    assert sp.decode(pieces) == text  # round trip through the vocabulary


def test_sentencepiece_requires_pad_and_bos(tmp_path):
  import sentencepiece as spm
  prefix = str(tmp_path / "nopad")
  spm.SentencePieceTrainer.train(sentence_iterator=iter(["a b c d e f"] * 10),
                                 model_prefix=prefix, vocab_size=10, minloglevel=2)
  with pytest.raises(ValueError, match="pad"):
    towers.SentencePieceTokenizer(prefix + ".model")


@pytest.mark.parametrize("pooling", ["pooled", "cls", "mean"])
def test_hub_bert_pooling_matches_encoder(bert_pair, vocab_file, pooling):
  tower = towers.HubBertTextTower(*bert_pair, state="L", pooling=pooling, seq_length=16)
  tokens = tower.tokenize(SENTENCES)
  got = tower(SENTENCES).numpy()
  np.testing.assert_allclose(tower(tokens).numpy(), got, atol=1e-6)
  enc = hub.load(bert_pair[1])(tokens)
  seq, mask = enc["sequence_output"].numpy(), tokens["input_mask"].numpy()
  expected = {
      "pooled": enc["pooled_output"].numpy(),
      "cls": seq[:, 0],
      "mean": (seq * mask[..., None]).sum(1) / mask.sum(1, keepdims=True),
  }[pooling]
  np.testing.assert_allclose(got, expected, atol=1e-5)


def test_hub_bert_locked_vs_unlocked(bert_pair):
  locked = towers.HubBertTextTower(*bert_pair, state="L")
  unlocked = towers.HubBertTextTower(*bert_pair, state="U")
  locked(SENTENCES), unlocked(SENTENCES)
  assert locked.trainable_weights == [] and unlocked.trainable_weights


def test_scratch_bert_pooler_only_trainable_when_used(vocab_file):
  tok = towers.WordPieceTokenizer(vocab_file, seq_length=16)
  names = {}
  for pooling in ("cls", "pooled"):
    tower = towers.BertTextTower(tok, hidden_size=16, num_layers=1, num_heads=2, inner_dim=32,
                                 pooling=pooling)
    assert tower(SENTENCES).shape == (5, 16)
    names[pooling] = {v.name for v in tower.trainable_weights}
  assert {"pooler_transform/kernel:0", "pooler_transform/bias:0"} <= names["pooled"]
  assert not any("pooler" in n for n in names["cls"])
  assert len(names["pooled"]) == len(names["cls"]) + 2
  with pytest.raises(ValueError, match="pooling"):
    towers.BertTextTower(tok, pooling="max")


@pytest.mark.parametrize("pooling", ["cls", "pooled"])
def test_scratch_bert_computes_the_last_block_for_cls_alone(vocab_file, pooling):
  """Under [CLS] pooling the last block runs for the first token only: the tower's output and
  gradients equal, to float rounding, what the full encoder (every token, a "mean" tower's) gives
  for [CLS] (the products have fewer rows, so a kernel may round differently)."""
  tf_keras.utils.set_random_seed(0)
  tok = towers.WordPieceTokenizer(vocab_file, seq_length=16)
  shape = dict(hidden_size=32, num_layers=2, num_heads=2, inner_dim=64)
  tower = towers.BertTextTower(tok, pooling=pooling, **shape)
  full = towers.BertTextTower(tok, pooling="mean", **shape)
  tower(SENTENCES), full(SENTENCES)
  if pooling == "pooled":
    full.encoder.pooler_layer.trainable = True  # the same weight order as the "pooled" tower
  full.set_weights([w + 0.01 * np.random.default_rng(i).normal(size=w.shape)
                    for i, w in enumerate(tower.get_weights())])
  tower.set_weights(full.get_weights())
  inputs = tok(tf.constant(SENTENCES))
  assert tower.encoder(inputs)["sequence_output"].shape[1] == 1
  assert full.encoder(inputs)["sequence_output"].shape[1] == 16
  key = "pooled_output" if pooling == "pooled" else "sequence_output"
  with tf.GradientTape() as t1:
    got = tower(inputs)
    loss1 = tf.reduce_sum(got * tf.range(1.0, 33.0))
  with tf.GradientTape() as t2:
    out = full.encoder(inputs)[key]
    want = out if pooling == "pooled" else out[:, 0]
    loss2 = tf.reduce_sum(want * tf.range(1.0, 33.0))
  np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-6, atol=1e-6)
  g1 = t1.gradient(loss1, tower.encoder.trainable_variables)
  g2 = t2.gradient(loss2, full.encoder.trainable_variables)
  assert len(g1) == len(g2) > 0
  # Rounding only: sums of thousands of terms (the word embeddings' gradient reaches ~4 here)
  # in another order. A wrong gradient would be off by far more.
  for v, a, b in zip(tower.encoder.trainable_variables, g1, g2):
    np.testing.assert_allclose(tf.convert_to_tensor(a).numpy(), tf.convert_to_tensor(b).numpy(),
                               rtol=1e-4, atol=1e-5, err_msg=v.name)
