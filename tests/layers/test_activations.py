"""lit_keras.layers.activations.gelu: tf.nn.gelu's values and gradient, with less memory kept."""
import math

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from lit_keras import towers
from lit_keras.layers import activations
from tests import tiny_models


def _x(n=4096, dtype=tf.float32):
  rng = np.random.default_rng(0)
  values = np.concatenate([rng.normal(scale=3.0, size=n - 6), [0.0, -0.0, 8.0, -8.0, 30.0, -30.0]])
  return tf.constant(values, dtype)


def _gelu_grad64(x):
  """d/dx x·Φ(x) = Φ(x) + x·φ(x), in float64 from the standard library's erf."""
  x = np.asarray(x, np.float64)
  cdf = np.array([0.5 * (1.0 + math.erf(v / math.sqrt(2.0))) for v in x])
  return cdf + x * np.exp(-0.5 * x ** 2) / math.sqrt(2.0 * math.pi)


def _gelu_tanh_grad64(x, h=1e-6):
  """The tanh GELU's derivative by central differences of the float64 function."""
  x = np.asarray(x, np.float64)
  f = lambda v: 0.5 * v * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (v + 0.044715 * v ** 3)))
  return (f(x + h) - f(x - h)) / (2 * h)


@pytest.mark.parametrize("dtype", [tf.float32, tf.bfloat16])
def test_forward_is_tf_nn_gelu_bit_for_bit(dtype):
  x = _x(dtype=dtype)
  got = activations.gelu(x)
  assert got.dtype == dtype
  np.testing.assert_array_equal(got.numpy(), tf.nn.gelu(x, approximate=False).numpy())


def test_gradient_matches_numpy_and_autodiff():
  x = _x()
  with tf.GradientTape(persistent=True) as tape:
    tape.watch(x)
    ours = activations.gelu(x)
    theirs = tf.nn.gelu(x, approximate=False)
  w = tf.linspace(-1.0, 1.0, x.shape[0])  # a non-uniform upstream gradient
  got = tape.gradient(ours, x, output_gradients=w).numpy()
  np.testing.assert_allclose(got, w.numpy() * _gelu_grad64(x.numpy()), rtol=2e-6, atol=1e-7)
  np.testing.assert_allclose(got, tape.gradient(theirs, x, output_gradients=w).numpy(),
                             rtol=2e-6, atol=1e-7)


def _step_peak_bytes(act, x):
  """Peak bytes the host allocator holds over one traced forward+backward of a 4-call chain."""
  @tf.function
  def step(x):
    with tf.GradientTape() as tape:
      tape.watch(x)
      h = x
      for _ in range(4):
        h = act(h) * 1.5
      loss = tf.reduce_sum(h)
    return tape.gradient(loss, x)

  step(x)  # trace and warm up
  tf.config.experimental.reset_memory_stats("CPU:0")
  before = tf.config.experimental.get_memory_info("CPU:0")["current"]
  step(x).numpy()
  return tf.config.experimental.get_memory_info("CPU:0")["peak"] - before


def test_backward_keeps_less_memory():
  x = tf.random.normal([1024, 1024])  # 4 MiB
  mib = 4 * 2 ** 20
  with tf.device("CPU:0"):
    ours = _step_peak_bytes(activations.gelu, x)
    theirs = _step_peak_bytes(lambda h: tf.nn.gelu(h, approximate=False), x)
  # Autodiff keeps three x-sized intermediates per call for the backward pass, ours keeps the
  # call's input: at least one tensor fewer per call.
  assert theirs - ours >= 4 * mib, (theirs / mib, ours / mib)


def test_serializes_by_name_and_text_tower_uses_it(vocab_file):
  config = tf_keras.activations.serialize(activations.gelu)
  assert config["config"] == "lit_keras>gelu"
  assert tf_keras.activations.deserialize(config) is activations.gelu
  assert tf_keras.activations.get("lit_keras>gelu") is activations.gelu
  assert activations.get("gelu") is activations.gelu
  assert activations.get("relu") is tf_keras.activations.relu
  tower = tiny_models.scratch_text_tower(vocab_file)
  assert tower.get_config()["inner_activation"] == "gelu"
  assert tower.encoder.transformer_layers[0]._inner_activation is activations.gelu  # pylint: disable=protected-access
  rebuilt = towers.BertTextTower.from_config(tower.get_config())
  assert rebuilt.encoder.transformer_layers[0]._inner_activation is activations.gelu  # pylint: disable=protected-access


def test_gelu_tanh_forward_is_tf_nn_gelu_approximate_bit_for_bit():
  for dtype in (tf.float32, tf.bfloat16):
    x = _x(dtype=dtype)
    got = activations.gelu_tanh(x)
    assert got.dtype == dtype
    np.testing.assert_array_equal(got.numpy(), tf.nn.gelu(x, approximate=True).numpy())


def test_gelu_tanh_gradient_matches_numpy_and_autodiff():
  x = _x()
  with tf.GradientTape(persistent=True) as tape:
    tape.watch(x)
    ours = activations.gelu_tanh(x)
    theirs = tf.nn.gelu(x, approximate=True)
  w = tf.linspace(-1.0, 1.0, x.shape[0])
  got = tape.gradient(ours, x, output_gradients=w).numpy()
  numeric = _gelu_tanh_grad64(x.numpy())  # an independent reference
  # float32 tanh reaches ±1 near |x| ≈ 4.8, where the true derivative is still 1 ± 4e-6: that
  # much absolute difference, for ours and for autodiff alike.
  np.testing.assert_allclose(got, w.numpy() * numeric, rtol=1e-5, atol=5e-6)
  # The two formulas round differently in float32 (up to ≈ 3e-6 where 1 + tanh cancels).
  np.testing.assert_allclose(got, tape.gradient(theirs, x, output_gradients=w).numpy(),
                             rtol=1e-5, atol=5e-6)


def test_gelu_tanh_backward_keeps_less_memory():
  x = tf.random.normal([1024, 1024])  # 4 MiB
  mib = 4 * 2 ** 20
  with tf.device("CPU:0"):
    ours = _step_peak_bytes(activations.gelu_tanh, x)
    theirs = _step_peak_bytes(lambda h: tf.nn.gelu(h, approximate=True), x)
  # Autodiff keeps several x-sized tensors per call (grappler fuses some), ours keeps the input:
  # at least one tensor fewer per call.
  assert theirs - ours >= 4 * mib, (theirs / mib, ours / mib)


def test_vit_tower_uses_gelu_tanh_with_unchanged_outputs_and_gradients():
  from official.vision.modeling.backbones import vit  # pylint: disable=g-import-not-at-top
  tf_keras.utils.set_random_seed(0)
  tower = towers.ViTImageTower(image_size=16, patch_size=8, hidden_size=32, num_layers=2,
                               num_heads=2, mlp_dim=64)
  encoder, = [l for l in tower.backbone.layers if isinstance(l, vit.Encoder)]
  blocks = encoder._encoder_layers  # pylint: disable=protected-access
  assert [b._intermediate_activation_layer.activation for b in blocks] == [activations.gelu_tanh] * 2  # pylint: disable=protected-access
  assert tower.get_config() == towers.ViTImageTower.from_config(tower.get_config()).get_config()
  images = tf.random.uniform([3, 16, 16, 3], seed=1)

  def run():
    with tf.GradientTape() as tape:
      out = tower.encode(images, training=True)
      loss = tf.reduce_sum(out * tf.linspace(-1.0, 1.0, out.shape[-1]))
    return out.numpy(), [g.numpy() for g in tape.gradient(loss, tower.trainable_variables)]

  lean_out, lean_grads = run()
  # The same weights through tf-models-official's own activation.
  from official.modeling import activations as tfm_activations  # pylint: disable=g-import-not-at-top
  for b in blocks:
    b._intermediate_activation_layer.activation = tfm_activations.gelu  # pylint: disable=protected-access
  plain_out, plain_grads = run()
  np.testing.assert_array_equal(lean_out, plain_out)
  assert len(lean_grads) == len(plain_grads) > 10
  for got, want in zip(lean_grads, plain_grads):
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)


def _xla_compiled_calls(act, x):
  """Names of the XLA-compiled (`_XlaMustCompile`) function calls in act's traced gradient."""
  @tf.function
  def grad(x):
    with tf.GradientTape() as tape:
      tape.watch(x)
      y = act(x)
    return tape.gradient(y, x)

  graph = grad.get_concrete_function(x).graph
  names = []
  for op in graph.get_operations():
    if op.type in ("PartitionedCall", "StatefulPartitionedCall"):
      f = graph._get_function(op.get_attr("f").name)  # pylint: disable=protected-access
      attrs = f.cached_definition.attr if f is not None else {}
      if "_XlaMustCompile" in attrs and attrs["_XlaMustCompile"].b:
        names.append(op.get_attr("f").name)
  return names


def test_tanh_backward_is_one_xla_call_exact_backward_plain_ops():
  x = _x(64)
  # The ViT's tanh GELU: its derivative chain is one XLA-compiled call.
  assert len(_xla_compiled_calls(activations.gelu_tanh, x)) == 1
  # The text tower's exact GELU: plain TensorFlow ops, so a text-only run never compiles XLA.
  assert _xla_compiled_calls(activations.gelu, x) == []


@pytest.mark.parametrize("act,grad64", [(activations.gelu, _gelu_grad64),
                                         (activations.gelu_tanh, _gelu_tanh_grad64)])
def test_gradient_inside_an_xla_step_and_in_bfloat16(act, grad64):
  x = _x(512)
  w = tf.linspace(-1.0, 1.0, x.shape[0])

  @tf.function(jit_compile=True)
  def grad(x, w, dtype):
    with tf.GradientTape() as tape:
      tape.watch(x)
      y = act(tf.cast(x, dtype))
      loss = tf.reduce_sum(tf.cast(y, tf.float32) * w)
    return tape.gradient(loss, x)

  np.testing.assert_allclose(grad(x, w, tf.float32).numpy(), w.numpy() * grad64(x.numpy()),
                             rtol=1e-5, atol=5e-6)
  # bfloat16 has an 8-bit mantissa: the input and each intermediate round to ~0.4%.
  bf16_x = tf.cast(tf.cast(x, tf.bfloat16), tf.float32).numpy()
  got = grad(x, w, tf.bfloat16).numpy()
  assert got.dtype == np.float32
  np.testing.assert_allclose(got, w.numpy() * grad64(bf16_x), rtol=2e-2, atol=2e-2)
