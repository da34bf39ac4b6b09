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
  # d/dx x·Φ(x) = Φ(x) + x·φ(x), in float64 from the standard library's erf.
  x64 = x.numpy().astype(np.float64)
  cdf = np.array([0.5 * (1.0 + math.erf(v / math.sqrt(2.0))) for v in x64])
  pdf = np.exp(-0.5 * x64 ** 2) / math.sqrt(2.0 * math.pi)
  np.testing.assert_allclose(got, w.numpy() * (cdf + x64 * pdf), rtol=2e-6, atol=1e-7)
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
