"""Tokenizers that turn strings into the BERT encoder inputs, inside tf.data or inside a model.

Both produce the public BERT interface that TF-Hub preprocessors produce:
`{"input_word_ids", "input_mask", "input_type_ids"}`, int32 `[batch, seq_length]`, laid out as
`[CLS] pieces… [SEP] [PAD]…`. Over-long texts are truncated (never an error), empty texts give
`[CLS] [SEP]`, invalid UTF-8 is replaced rather than raising. The layers hold no variables, so they
run in `Dataset.map` as well as in a model or an exported SavedModel.
"""
import sentencepiece
import tensorflow as tf
import tensorflow_text as tf_text
import tf_keras
from official.nlp.modeling.layers import text_layers

from lit_keras import serialization
from lit_keras.data import preprocess


def _read_lines(path):
  with tf.io.gfile.GFile(path, "r") as f:
    return [line.rstrip("\n") for line in f]


def _pack(pieces, seq_length, start_id, end_id):
  """[CLS] pieces[:seq_length-2] [SEP], padded with id 0 to seq_length (static shape), by
  tf-models-official's `BertPackInputs` (the packing of the public TF-Hub BERT preprocessors)."""
  packed = text_layers.BertPackInputs.bert_pack_inputs(
      [pieces], seq_length=seq_length, start_of_sequence_id=start_id, end_of_segment_id=end_id,
      padding_id=0)
  return {k: tf.cast(v, tf.int32) for k, v in packed.items()}


@serialization.register
class WordPieceTokenizer(tf_keras.layers.Layer):
  """BERT WordPiece tokenization (tensorflow_text `FastBertTokenizer`) with packing.

  Args:
    vocabulary: path of a BERT `vocab.txt` (one token per line) or a list of tokens. Must
      contain `[PAD]` (id 0), `[UNK]`, `[CLS]`, `[SEP]`.
    seq_length: output length, special tokens included (LiT: 16 tokens are enough).
    lower_case: lower-case and strip accents (uncased vocabularies).
  """

  def __init__(self, vocabulary, seq_length=16, lower_case=True, **kwargs):
    super().__init__(trainable=False, **kwargs)
    self.vocabulary = vocabulary
    self.seq_length = int(seq_length)
    self.lower_case = bool(lower_case)
    tokens = _read_lines(vocabulary) if isinstance(vocabulary, str) else list(vocabulary)
    for special in ("[PAD]", "[UNK]", "[CLS]", "[SEP]"):
      if special not in tokens:
        raise ValueError(f"WordPiece vocabulary lacks the special token {special}")
    if tokens[0] != "[PAD]":
      raise ValueError("WordPiece vocabulary must have [PAD] at id 0")
    if self.seq_length < 2:
      raise ValueError("seq_length must be at least 2 ([CLS] and [SEP])")
    self.vocab_size = len(tokens)
    self.special_ids = {t: tokens.index(t) for t in ("[PAD]", "[UNK]", "[CLS]", "[SEP]")}
    self.start_id, self.end_id = self.special_ids["[CLS]"], self.special_ids["[SEP]"]
    self._tokenizer = tf_text.FastBertTokenizer(
        vocab=tokens, token_out_type=tf.int64, lower_case_nfd_strip_accents=self.lower_case)

  def pieces(self, strings):
    """Unpacked token ids, ragged int32 [b, (pieces)]."""
    return tf.cast(self._tokenizer.tokenize(preprocess.valid_utf8(strings)), tf.int32)

  def call(self, strings):
    return _pack(self.pieces(strings), self.seq_length, self.start_id, self.end_id)

  def get_config(self):
    config = super().get_config()
    config.pop("trainable", None)
    config.update(vocabulary=self.vocabulary, seq_length=self.seq_length,
                  lower_case=self.lower_case)
    return config


@serialization.register
class SentencePieceTokenizer(tf_keras.layers.Layer):
  """SentencePiece tokenization (tensorflow_text) for multilingual vocabularies.

  Handles scripts without spaces (Japanese, Chinese, Thai) since SentencePiece needs no
  pre-tokenization. Layout: `[BOS] pieces… [EOS] [PAD]…`, using the model's own bos/eos/pad ids.
  The SentencePiece model lives in a TF resource: `tf.random.set_seed` (and so
  `tf_keras.utils.set_random_seed`) drops it, so create the tokenizer after seeding.

  Args:
    model_file: path of a trained SentencePiece `.model` file. The model must define bos, eos and
      pad pieces (e.g. trained with `pad_id=0, unk_id=1, bos_id=2, eos_id=3`).
    seq_length: output length, special tokens included.
  """

  def __init__(self, model_file, seq_length=16, **kwargs):
    super().__init__(trainable=False, **kwargs)
    self.model_file = model_file
    self.seq_length = int(seq_length)
    with tf.io.gfile.GFile(model_file, "rb") as f:
      proto = f.read()
    sp = sentencepiece.SentencePieceProcessor(model_proto=proto)
    ids = {"pad": sp.pad_id(), "bos": sp.bos_id(), "eos": sp.eos_id()}
    missing = [k for k, v in ids.items() if v < 0]
    if missing:
      raise ValueError(f"SentencePiece model {model_file} defines no {missing} id(s); train it "
                       "with e.g. pad_id=0, unk_id=1, bos_id=2, eos_id=3.")
    if ids["pad"] != 0:
      raise ValueError("SentencePiece model must use pad_id=0 (the BERT encoder's padding id)")
    self.vocab_size = sp.get_piece_size()
    self.special_ids = ids
    self.start_id, self.end_id = ids["bos"], ids["eos"]
    self._tokenizer = tf_text.SentencepieceTokenizer(model=proto, out_type=tf.int32)

  def pieces(self, strings):
    """Unpacked token ids, ragged int32 [b, (pieces)]."""
    return self._tokenizer.tokenize(preprocess.valid_utf8(strings))

  def call(self, strings):
    return _pack(self.pieces(strings), self.seq_length, self.start_id, self.end_id)

  def get_config(self):
    config = super().get_config()
    config.pop("trainable", None)
    config.update(model_file=self.model_file, seq_length=self.seq_length)
    return config
