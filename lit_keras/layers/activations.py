"""GELU (exact and tanh-approximate) whose backward pass keeps only its input.

Differentiating `tf.nn.gelu(x)` = 0.5·x·erfc(−x/√2) op by op keeps three intermediate tensors
of x's size (−x/√2, erfc(·) and 0.5·x) alive from the forward pass to the backward pass, for
every feed-forward layer. In a BERT text tower those are the largest activations
([batch, length, inner_dim]); at the bench-tiny shape they are most of a training step's
transient memory. `gelu` computes the same forward (bit-identical: it is `tf.nn.gelu`), keeps
only x and recomputes the derivative Φ(x) + x·φ(x) from it in the backward pass: one tensor
kept per call instead of three (at the bench-tiny shape, ≈ 35 MB less peak RSS in training:
`docs/benchmarks.md`).

`gelu_tanh` does the same for the tanh approximation 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))),
the activation of tf-models-official's Vision Transformer blocks (`official.modeling.activations
.gelu`): autodiff of it keeps four x-sized tensors per call (x³'s input, tanh's output, 0.5·x and
1 + tanh), `gelu_tanh` keeps x. `use_lean_gelu` switches built transformer blocks to it
(`ViTImageTower` does).
"""
import tensorflow as tf
import tf_keras

from lit_keras import serialization

_SQRT_HALF = 0.7071067811865476  # 1/√2
_INV_SQRT_2PI = 0.3989422804014327  # 1/√(2π)
_SQRT_2_OVER_PI = 0.7978845608028654  # √(2/π), as in tf.nn.gelu
_TANH_COEFF = 0.044715


def _gelu_grad(x, dy):
  cdf = 0.5 * tf.math.erfc(-x * _SQRT_HALF)  # Φ(x)
  pdf = _INV_SQRT_2PI * tf.exp(-0.5 * tf.square(x))  # φ(x)
  return dy * (cdf + x * pdf)


def _gelu_tanh_grad(x, dy):
  # d/dx 0.5·x·(1 + t), t = tanh(u), u = c·(x + a·x³): 0.5·(1 + t) + 0.5·x·(1 − t²)·c·(1 + 3a·x²).
  x2 = tf.square(x)
  t = tf.tanh(_SQRT_2_OVER_PI * x * (1.0 + _TANH_COEFF * x2))
  du = _SQRT_2_OVER_PI * (1.0 + 3.0 * _TANH_COEFF * x2)
  return dy * (0.5 * (1.0 + t) + 0.5 * x * (1.0 - tf.square(t)) * du)


# The tanh derivative is a chain of about ten elementwise ops over an activation-sized tensor;
# as separate TensorFlow kernels each one reads and writes that tensor. XLA fuses the chain into
# one loop (a ViT-and-text training step 9% faster on 2 CPU cores: `docs/benchmarks.md`, "The
# GELU backward, measured"). The exact GELU's derivative (erfc, exp and four products) stays plain
# TensorFlow ops: fused, it made a text-only training step only 1–2% faster, while its first use
# brings XLA's compiler into a process that otherwise never compiles XLA (≈ 50 MB more peak RSS
# when training from pre-computed embeddings or with a locked hub tower). The forward passes
# stay `tf.nn.gelu`, bit for bit.
_gelu_tanh_grad_fused = tf.function(_gelu_tanh_grad, jit_compile=True, autograph=False)


@tf.custom_gradient
def _gelu(x):
  def grad(dy):
    return _gelu_grad(x, dy)

  return tf.nn.gelu(x, approximate=False), grad


@serialization.register
def gelu(x):
  """Exact GELU, x·Φ(x), equal to `tf.nn.gelu(x, approximate=False)` forward and backward (to
  float rounding), keeping only `x` for the backward pass."""
  return _gelu(x)


@tf.custom_gradient
def _gelu_tanh(x):
  def grad(dy):
    return _gelu_tanh_grad_fused(x, dy)

  return tf.nn.gelu(x, approximate=True), grad


@serialization.register
def gelu_tanh(x):
  """Tanh-approximate GELU, equal to `tf.nn.gelu(x, approximate=True)` forward (bit for bit) and
  backward (to float rounding), keeping only `x` for the backward pass."""
  return _gelu_tanh(x)


def use_lean_gelu(blocks):
  """Switches the feed-forward activation of each built tf-models-official transformer block in
  `blocks` from tf-models-official's tanh-approximate `gelu` (that of its Vision Transformer) to
  `gelu_tanh`: the same values, less memory kept for the backward pass. The activation layer has
  no weights, so checkpoints are unaffected. Returns the number of blocks switched; blocks with
  other activations are left as they are."""
  from official.modeling import activations as tfm_activations  # pylint: disable=g-import-not-at-top
  switched = 0
  for block in blocks:
    layer = getattr(block, "_intermediate_activation_layer", None)
    if getattr(layer, "activation", None) is tfm_activations.gelu:
      layer.activation = gelu_tanh
      switched += 1
  return switched


def get(identifier):
  """`tf_keras.activations.get`, except that "gelu" is this module's `gelu`."""
  return gelu if identifier == "gelu" else tf_keras.activations.get(identifier)
