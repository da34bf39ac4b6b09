"""Multi-head attention whose score and context products are batched matrix products.

`tf_keras.layers.MultiHeadAttention` computes the attention scores and the attention-weighted
values with `tf.einsum` over `[batch, length, heads, dim]` tensors. For the short sequences of
the towers here (16–64 text tokens, 50–200 image patches) those are thousands of small products,
and the einsum ops — with the transposes and reductions their gradients add — run them far
below the matmul rate of the rest of the step. `use_batch_matmul_attention` switches built
attention layers to the same computation written as `tf.matmul` over
`[batch, heads, length, dim]`: the same products in the same order, so outputs and gradients
are bit-identical (`tests/layers/test_attention.py`).
"""
import math

import tensorflow as tf
import tf_keras

_KERAS_MHA = tf_keras.layers.MultiHeadAttention
# tf-models-official's vision MultiHeadAttention (the ViT's) keeps Keras's einsum computation
# behind `_compute_attention_delegate`, its documented override point.
_VISION_MHA = ("official.vision.modeling.layers.nn_layers", "MultiHeadAttention")


def _batch_matmul_attention(self, query, key, value, attention_mask=None, training=None):
  """`MultiHeadAttention._compute_attention` with the two products as `tf.matmul`."""
  if tuple(self._attention_axes) != (1,) or query.shape.rank != 4:
    return _KERAS_MHA._compute_attention(self, query, key, value, attention_mask, training)  # pylint: disable=protected-access
  # The same scaling as the einsum path (on the query), then [B, N, T, H] · [B, N, S, H]ᵀ.
  query = tf.multiply(query, 1.0 / math.sqrt(float(self._key_dim)))
  heads_first = lambda t: tf.transpose(t, [0, 2, 1, 3])
  scores = tf.matmul(heads_first(query), heads_first(key), transpose_b=True)  # [B, N, T, S]
  scores = self._masked_softmax(scores, attention_mask)
  dropped = self._dropout_layer(scores, training=training)
  output = tf.matmul(dropped, heads_first(value))  # [B, N, T, H]
  return tf.transpose(output, [0, 2, 1, 3]), scores


_SUBCLASSES = {}


def _switched(cls):
  """`cls` with batched-matmul attention, or None for a class this does not know."""
  if cls in _SUBCLASSES.values():
    return cls
  if cls is _KERAS_MHA:
    hook = "_compute_attention"
  elif (cls.__module__, cls.__name__) == _VISION_MHA:
    hook = "_compute_attention_delegate"
  else:
    return None
  if cls not in _SUBCLASSES:
    # Keras records a layer's class by name: keep the original's, so that configs, SavedModel
    # metadata and checkpoints are exactly those of the plain layer.
    _SUBCLASSES[cls] = type(cls.__name__, (cls,), {
        hook: _batch_matmul_attention, "__module__": cls.__module__,
        "__qualname__": cls.__qualname__,
        "__doc__": f"{cls.__name__} with the attention products as batched matmuls."})
  return _SUBCLASSES[cls]


def use_batch_matmul_attention(blocks):
  """Switches the self-attention layer of each built tf-models-official transformer block in
  `blocks` (`TransformerEncoderBlock`: the BERT encoder's and the ViT's) to batched matmuls.
  Returns how many use batched matmuls afterwards; attention layers of other classes (a user's
  subclass, say) are left as they are."""
  switched = 0
  for block in blocks:
    layer = getattr(block, "_attention_layer", None)
    sub = _switched(type(layer)) if layer is not None else None
    if sub is not None:
      layer.__class__ = sub
      switched += 1
  return switched
