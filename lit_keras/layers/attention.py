"""Multi-head attention whose score and context products are batched matrix products.

`tf_keras.layers.MultiHeadAttention` computes the attention scores and the attention-weighted
values with `tf.einsum` over `[batch, length, heads, dim]` tensors. For the 16-token texts of
LiT's text towers those are thousands of tiny products, and the einsum ops — with the
transposes and reductions their gradients add — run them far below the matmul rate of the
rest of the step. `use_batch_matmul_attention` switches built attention layers to the same
computation written as `tf.matmul` over `[batch, heads, length, dim]` for sequences of at most
`MAX_LENGTH` tokens: the same products in the same order, so the outputs and the gradients are
bit-identical (`tests/layers/test_attention.py`). Longer sequences keep the einsums: at 16
tokens the text tower's step got 2.7% faster, while at 65 tokens (the bench's ViT) the batched
matmuls and their transposes cost more than they saved (`docs/benchmarks.md`).
"""
import math

import tensorflow as tf
import tf_keras

MAX_LENGTH = 16  # the longest query/key length measured faster as batched matmuls


class _BatchMatmulAttention(tf_keras.layers.MultiHeadAttention):
  """`MultiHeadAttention` with the score and context products as `tf.matmul`."""

  def _compute_attention(self, query, key, value, attention_mask=None, training=None):
    short = lambda n: n is not None and n <= MAX_LENGTH
    if (query.shape.rank != 4 or tuple(self._attention_axes) != (1,)
        or not (short(query.shape[1]) and short(key.shape[1]))):
      return super()._compute_attention(query, key, value, attention_mask, training)
    # The same scaling as the einsum path (on the query), then [B, N, T, H] · [B, N, S, H]ᵀ.
    query = tf.multiply(query, 1.0 / math.sqrt(float(self._key_dim)))
    heads_first = lambda t: tf.transpose(t, [0, 2, 1, 3])
    scores = tf.matmul(heads_first(query), heads_first(key), transpose_b=True)  # [B, N, T, S]
    scores = self._masked_softmax(scores, attention_mask)
    dropped = self._dropout_layer(scores, training=training)
    output = tf.matmul(dropped, heads_first(value))  # [B, N, T, H]
    return tf.transpose(output, [0, 2, 1, 3]), scores


# Keras records a layer's class by name: keep MultiHeadAttention's, so that configs, SavedModel
# metadata and checkpoints are exactly those of the plain layer.
_BatchMatmulAttention.__name__ = tf_keras.layers.MultiHeadAttention.__name__
_BatchMatmulAttention.__qualname__ = tf_keras.layers.MultiHeadAttention.__qualname__
_BatchMatmulAttention.__module__ = tf_keras.layers.MultiHeadAttention.__module__


def use_batch_matmul_attention(blocks):
  """Switches the self-attention of each tf-models-official transformer block in `blocks`
  (built: `TransformerEncoderBlock` and subclasses) to batched matmuls on sequences of at most
  `MAX_LENGTH` tokens. Returns the number of attention layers switched; layers of other
  attention classes are left as they are."""
  switched = 0
  for block in blocks:
    layer = getattr(block, "_attention_layer", None)
    if type(layer) is tf_keras.layers.MultiHeadAttention:  # pylint: disable=unidiomatic-typecheck
      layer.__class__ = _BatchMatmulAttention
      switched += 1
  return switched
