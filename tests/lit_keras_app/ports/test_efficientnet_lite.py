"""`ConvBN`: at inference the BatchNorm folded into the convolution, in training the two apart."""
import numpy as np
import pytest
import tensorflow as tf

from lit_keras_app.ports import efficientnet_lite


def _conv_np(x, w, depthwise):
  """A stride-1 "same" convolution in float64 NumPy (odd kernel), NHWC; w is the Keras kernel."""
  k = w.shape[0]
  p = k // 2
  xp = np.pad(x, [(0, 0), (p, p), (p, p), (0, 0)])
  out = 0.0
  for i in range(k):
    for j in range(k):
      patch = xp[:, i:i + x.shape[1], j:j + x.shape[2], :]
      out = out + (patch * w[i, j, :, 0] if depthwise else patch @ w[i, j])
  return out


@pytest.mark.parametrize("depthwise", [False, True])
def test_conv_bn_inference_is_conv_then_batchnorm_and_training_is_batchnorm(depthwise):
  layer = efficientnet_lite.ConvBN(None if depthwise else 6, 3, depthwise=depthwise,
                                   momentum=0.5)
  x = tf.random.stateless_normal([4, 7, 7, 5], [1, 2])
  layer(x)
  rng = np.random.default_rng(0)
  c = 5 if depthwise else 6
  gamma, beta = rng.uniform(0.5, 2.0, c), rng.normal(size=c)
  mean, var = rng.normal(size=c), rng.uniform(0.1, 3.0, c)
  layer.bn.set_weights([gamma, beta, mean, var])
  w = layer.conv.get_weights()[0].astype(np.float64)
  conv = _conv_np(x.numpy().astype(np.float64), w, depthwise)
  want = (conv - mean) / np.sqrt(var + efficientnet_lite.BN_EPSILON) * gamma + beta
  np.testing.assert_allclose(layer(x, training=False).numpy(), want, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(layer(x).numpy(), want, rtol=1e-5, atol=1e-5)  # default: inference
  np.testing.assert_array_equal(layer.bn.moving_mean.numpy(), mean.astype(np.float32))

  # Training: batch statistics, and the moving averages move (momentum 0.5).
  got = layer(x, training=True).numpy()
  mu, sigma2 = conv.mean(axis=(0, 1, 2)), conv.var(axis=(0, 1, 2))
  np.testing.assert_allclose(
      got, (conv - mu) / np.sqrt(sigma2 + efficientnet_lite.BN_EPSILON) * gamma + beta,
      rtol=1e-4, atol=1e-4)
  np.testing.assert_allclose(layer.bn.moving_mean.numpy(), 0.5 * mean + 0.5 * mu, rtol=1e-5,
                             atol=1e-5)


def test_conv_bn_config_round_trip():
  layer = efficientnet_lite.ConvBN(8, 1, strides=2, conv_name="c", bn_name="b", name="cb")
  again = efficientnet_lite.ConvBN.from_config(layer.get_config())
  assert again.get_config() == layer.get_config()
  assert (again.conv.name, again.bn.name, again.strides) == ("c", "b", 2)
