"""Projection head and logit scale."""
import math

import numpy as np
import tensorflow as tf
import tf_keras

from lit_keras import layers


def test_linear_head_is_one_matmul():
  head = layers.ProjectionHead(4)
  x = np.random.default_rng(0).normal(size=(3, 6)).astype(np.float32)
  y = head(x).numpy()
  w, b = (v.numpy() for v in head.weights)
  np.testing.assert_allclose(y, x @ w + b, rtol=1e-5, atol=1e-6)
  assert len(head.trainable_weights) == 2


def test_mlp_head_shapes_and_config():
  head = layers.ProjectionHead(4, hidden_dims=(8, 8), activation="relu", use_bias=False)
  assert head(tf.zeros([2, 5])).shape == (2, 4)
  assert len(head.trainable_weights) == 3
  clone = tf_keras.layers.deserialize(tf_keras.layers.serialize(head))
  assert clone.get_config() == head.get_config()
  assert clone(tf.zeros([2, 5])).shape == (2, 4)


def test_mlp_hidden_layers_get_distinct_initial_weights():
  head = layers.ProjectionHead(8, hidden_dims=(8, 8))
  head(tf.zeros([1, 8]))
  kernels = [w.numpy() for w in head.weights if w.shape == (8, 8)]
  assert len(kernels) == 3
  assert not np.allclose(kernels[0], kernels[1]) and not np.allclose(kernels[1], kernels[2])


def test_logit_scale_init_and_config():
  scale = layers.LogitScale()
  out = scale(None)
  np.testing.assert_allclose(out["logit_scale"].numpy(), 10.0, rtol=1e-6)
  np.testing.assert_allclose(scale.log_scale.numpy(), math.log(10.0), rtol=1e-6)
  assert "logit_bias" not in out and len(scale.trainable_weights) == 1
  sig = layers.LogitScale(use_bias=True, init_bias=-10.0)
  assert sig(None)["logit_bias"].numpy() == -10.0 and len(sig.trainable_weights) == 2
  clone = tf_keras.layers.deserialize(tf_keras.layers.serialize(sig))
  assert clone.get_config() == sig.get_config()
  fixed = layers.LogitScale(trainable_scale=False)
  assert fixed.trainable_weights == []
