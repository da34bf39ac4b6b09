"""Exact GELU whose backward pass keeps only its input.

Differentiating `tf.nn.gelu(x)` = 0.5·x·erfc(−x/√2) op by op keeps three intermediate tensors
of x's size (−x/√2, erfc(·) and 0.5·x) alive from the forward pass to the backward pass, for
every feed-forward layer. In a BERT text tower those are the largest activations
([batch, length, inner_dim]); at the bench-tiny shape they are most of a training step's
transient memory. `gelu` computes the same forward (bit-identical: it is `tf.nn.gelu`), keeps
only x and recomputes the derivative Φ(x) + x·φ(x) from it in the backward pass: one tensor
kept per call instead of three (at the bench-tiny shape, ≈ 35 MB less peak RSS in training:
`docs/benchmarks.md`).
"""
import tensorflow as tf
import tf_keras

from lit_keras import serialization

_SQRT_HALF = 0.7071067811865476  # 1/√2
_INV_SQRT_2PI = 0.3989422804014327  # 1/√(2π)


@tf.custom_gradient
def _gelu(x):
  def grad(dy):
    cdf = 0.5 * tf.math.erfc(-x * _SQRT_HALF)  # Φ(x)
    pdf = _INV_SQRT_2PI * tf.exp(-0.5 * tf.square(x))  # φ(x)
    return dy * (cdf + x * pdf)

  return tf.nn.gelu(x, approximate=False), grad


@serialization.register
def gelu(x):
  """Exact GELU, x·Φ(x), equal to `tf.nn.gelu(x, approximate=False)` forward and backward (to
  float rounding), keeping only `x` for the backward pass."""
  return _gelu(x)


def get(identifier):
  """`tf_keras.activations.get`, except that "gelu" is this module's `gelu`."""
  return gelu if identifier == "gelu" else tf_keras.activations.get(identifier)
