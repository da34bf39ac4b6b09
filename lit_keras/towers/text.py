"""Text towers: a TF-Hub BERT preprocess+encoder pair, or a BertEncoder trained from scratch."""
import tensorflow as tf
import tensorflow_hub as hub
import tensorflow_text  # noqa: F401  (registers the ops that hub BERT preprocessors use)
import tf_keras
from official.nlp.modeling import networks

from lit_keras import serialization
from lit_keras.data import preprocess
from lit_keras.layers import activations
from lit_keras.layers import attention
from lit_keras.towers import base
from lit_keras.towers import recompute as recompute_lib

BERT_INPUT_KEYS = ("input_word_ids", "input_mask", "input_type_ids")
POOLINGS = ("pooled", "cls", "mean")


def _pool(outputs, mask, pooling):
  """outputs: the BERT encoder dict; mask: int [b, L]."""
  if pooling == "pooled":
    return outputs["pooled_output"]
  seq = outputs["sequence_output"]
  if pooling == "cls":
    return seq[:, 0]
  mask = tf.cast(mask, seq.dtype)[:, :, None]
  return tf.reduce_sum(seq * mask, axis=1) / tf.maximum(tf.reduce_sum(mask, axis=1), 1.0)


def _check_pooling(pooling):
  if pooling not in POOLINGS:
    raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
  return pooling


class TextTower(base.Tower):
  """Accepts raw strings `[batch]` or already tokenized BERT inputs (a dict).

  Tokenizing in the tf.data pipeline (`tower.tokenize` in `Dataset.map`) keeps string ops off the
  accelerator (TPUs cannot run them); passing strings is convenient on CPU and in exports.
  """

  def tokenize(self, strings):
    """strings [b] → the BERT input dict, [b, seq_length] each."""
    raise NotImplementedError

  def preprocessing(self):
    """What a TF-Hub-format preprocessor of this tower needs: (the layer that holds the
    tokenizer's resources, strings → ragged int32 token ids, start id, end id, seq_length)."""
    raise NotImplementedError

  def export_encoder(self):
    """The BERT encoder a TF-Hub-format export saves (`lit_keras.export.tfhub_format`)."""
    return self.encoder

  def encode(self, inputs, training=None):
    """Subclasses set `self.encoder` (BERT dict in → dict out) and `self.pooling`."""
    inputs = self._inputs(inputs)
    outputs = self.encoder(inputs, training=training)
    return _pool(outputs, inputs["input_mask"], self.pooling)

  def _inputs(self, inputs):
    if isinstance(inputs, dict):
      missing = [k for k in BERT_INPUT_KEYS if k not in inputs]
      if missing:
        raise ValueError(f"tokenized text inputs lack {missing}")
      return {k: inputs[k] for k in BERT_INPUT_KEYS}
    return self.tokenize(inputs)


@serialization.register
class HubBertTextTower(TextTower):
  """A pretrained BERT from a TF-Hub preprocess + encoder pair (handles or local paths).

  The public TF-Hub BERT interface: the preprocessor maps strings to `input_word_ids`,
  `input_mask`, `input_type_ids`; the encoder returns `pooled_output` and `sequence_output`.
  The preprocessor is re-packed to `seq_length` tokens (LiT uses 16) via its `tokenize` and
  `bert_pack_inputs` functions. The config stores the handles, never the weights.

  Args:
    preprocess_handle: handle or path of the preprocessor SavedModel.
    encoder_handle: handle or path of the encoder SavedModel.
    state: "L" or "U" (a hub encoder is pretrained; for "u" use `BertTextTower`).
    pooling: "pooled" (the encoder's pooler), "cls" or "mean" (masked mean of the tokens).
    seq_length: number of tokens, special tokens included.
  """

  allowed_states = (base.LOCKED, base.UNLOCKED)

  def __init__(self, preprocess_handle, encoder_handle, state=base.LOCKED, pooling="pooled",
               seq_length=16, **kwargs):
    kwargs["dtype"] = "float32"  # a hub SavedModel's signatures are float32 (even under bf16)
    super().__init__(state=state, **kwargs)
    self.preprocess_handle = preprocess_handle
    self.encoder_handle = encoder_handle
    self.pooling = _check_pooling(pooling)
    self.seq_length = int(seq_length)
    preprocessor = hub.load(preprocess_handle)
    special = preprocessor.tokenize.get_special_tokens_dict()
    self._start_id = int(special["start_of_sequence_id"])
    self._end_id = int(special["end_of_segment_id"])
    self._tokenize = hub.KerasLayer(preprocessor.tokenize, name="tokenize")
    self._pack = hub.KerasLayer(preprocessor.bert_pack_inputs,
                                arguments=dict(seq_length=self.seq_length), name="pack")
    self.encoder = base.hub_layer(encoder_handle, trainable=not self.locked, name="encoder",
                                  dtype="float32")

  def tokenize(self, strings):
    strings = preprocess.valid_utf8(strings)
    packed = self._pack([self._tokenize(strings)])
    return {k: tf.cast(packed[k], tf.int32) for k in BERT_INPUT_KEYS}

  def preprocessing(self):
    pieces = lambda s: tf.cast(self._tokenize(preprocess.valid_utf8(s)), tf.int32)
    return self._tokenize, pieces, self._start_id, self._end_id, self.seq_length

  def get_config(self):
    config = super().get_config()
    config.update(preprocess_handle=self.preprocess_handle, encoder_handle=self.encoder_handle,
                  pooling=self.pooling, seq_length=self.seq_length)
    return config


@serialization.register
class BertTextTower(TextTower):
  """A BERT text tower trained from scratch (the paper's "u" text state).

  tf-models-official `BertEncoder` with a tensorflow_text tokenizer (`WordPieceTokenizer` or
  `SentencePieceTokenizer`, passed as an instance). `max_sequence_length` is the tokenizer's.

  Args:
    tokenizer: a tokenizer layer from `lit_keras.towers.tokenizers`.
    hidden_size, num_layers, num_heads, inner_dim: encoder shape.
    pooling: "cls" (default), "mean" or "pooled" (BERT's tanh pooler on [CLS]).
    dropout_rate: dropout inside the encoder.
    inner_activation: activation of the feed-forward layers; "gelu" (exact) is
      `lit_keras.layers.activations.gelu`, which keeps less memory for the backward pass.
    recompute: recompute each transformer block's forward pass during backprop instead of
      keeping its activations (`lit_keras.towers.recompute`; needs `dropout_rate=0`).
  """

  allowed_states = (base.SCRATCH,)

  def __init__(self, tokenizer, hidden_size=256, num_layers=4, num_heads=4, inner_dim=1024,
               pooling="cls", dropout_rate=0.0, inner_activation="gelu", recompute=False,
               state=base.SCRATCH, **kwargs):
    super().__init__(state=state, **kwargs)
    if isinstance(tokenizer, dict):
      tokenizer = tf_keras.layers.deserialize(tokenizer)
    self.tokenizer = tokenizer
    self.hidden_size = int(hidden_size)
    self.num_layers = int(num_layers)
    self.num_heads = int(num_heads)
    self.inner_dim = int(inner_dim)
    self.pooling = _check_pooling(pooling)
    self.dropout_rate = float(dropout_rate)
    self.inner_activation = inner_activation
    # [CLS] pooling reads the first token alone: the last block computes its attention query,
    # output and feed-forward for that token only (keys and values still from every token). The
    # same [CLS] output up to float rounding (bit for bit at the demo's shape on an AVX-512 CPU),
    # a fifth fewer FLOPs at 4 blocks.
    self.encoder = self._build_encoder(
        output_range=1 if self.pooling in ("cls", "pooled") else None)
    self.recompute = bool(recompute)
    if self.recompute:
      recompute_lib.recompute_blocks(self.encoder.transformer_layers, self.dropout_rate, self.name)

  def _build_encoder(self, output_range):
    encoder = networks.BertEncoder(
        vocab_size=self.tokenizer.vocab_size, hidden_size=self.hidden_size,
        num_layers=self.num_layers, num_attention_heads=self.num_heads,
        inner_dim=self.inner_dim, inner_activation=activations.get(self.inner_activation),
        max_sequence_length=self.tokenizer.seq_length, type_vocab_size=2,
        output_dropout=self.dropout_rate, attention_dropout=self.dropout_rate,
        dict_outputs=True, output_range=output_range)
    if self.pooling != "pooled":
      # The tanh pooler is not part of the output: keep its weights out of the optimizer.
      encoder.pooler_layer.trainable = False
    # Same values, faster at LiT's 16 tokens (`lit_keras.layers.attention`).
    attention.use_batch_matmul_attention(encoder.transformer_layers)
    return encoder

  def export_encoder(self):
    """The encoder with every token in its `sequence_output` (the TF-Hub BERT interface): under
    [CLS] pooling a copy of the tower's encoder, holding the same weights."""
    if self.encoder.get_config()["output_range"] is None:
      return self.encoder
    full = self._build_encoder(output_range=None)
    full({k: tf.zeros([1, 2], tf.int32) for k in BERT_INPUT_KEYS})
    if not self.encoder.built:
      self.encoder({k: tf.zeros([1, 2], tf.int32) for k in BERT_INPUT_KEYS})
    for dst, src in zip(full.weights, self.encoder.weights, strict=True):
      if dst.name != src.name or dst.shape != src.shape:
        raise AssertionError(f"encoder copy out of order: {dst.name} vs {src.name}")
      dst.assign(src)
    return full

  def tokenize(self, strings):
    return self.tokenizer(strings)

  def preprocessing(self):
    t = self.tokenizer
    return t, t.pieces, t.start_id, t.end_id, t.seq_length

  def get_config(self):
    config = super().get_config()
    config.update(tokenizer=tf_keras.layers.serialize(self.tokenizer),
                  hidden_size=self.hidden_size, num_layers=self.num_layers,
                  num_heads=self.num_heads, inner_dim=self.inner_dim, pooling=self.pooling,
                  dropout_rate=self.dropout_rate, inner_activation=self.inner_activation,
                  recompute=self.recompute)
    return config
