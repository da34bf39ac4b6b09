"""The learned temperature (and, for the sigmoid loss, the learned bias)."""
import math

import tensorflow as tf
import tf_keras

from lit_keras import serialization

# Variable names the optimizer factory excludes from weight decay (paper: no decay on t).
NO_DECAY_VARIABLE_NAMES = ("log_scale", "logit_bias")


@serialization.register
class LogitScale(tf_keras.layers.Layer):
  """Owns the learned temperature `t` (log space) and an optional logit bias.

  LiT/big_vision: logits = zimg · ztxtᵀ · exp(t), t initialised at log(10), not clipped, no weight
  decay. SigLIP's sigmoid loss adds a bias b (init -10). The layer only returns the values; the
  losses turn them into logits, so the model never materialises an N×N matrix itself.

  Args:
    init_log_scale: initial value of t (default log 10).
    use_bias: create the learned bias (needed by the sigmoid loss).
    init_bias: initial bias.
    trainable_scale: set False to keep the temperature fixed.

  Call returns a dict {"logit_scale": exp(t)[, "logit_bias": b]} of float32 scalars.
  """

  def __init__(self, init_log_scale=math.log(10.0), use_bias=False, init_bias=-10.0,
               trainable_scale=True, **kwargs):
    kwargs["dtype"] = "float32"  # the temperature stays float32 under mixed precision
    super().__init__(**kwargs)
    self.init_log_scale = float(init_log_scale)
    self.use_bias = bool(use_bias)
    self.init_bias = float(init_bias)
    self.trainable_scale = bool(trainable_scale)
    # Variables are created eagerly (no input shape needed); float32 even under mixed precision.
    self.log_scale = self.add_weight(
        name="log_scale", shape=(), dtype=tf.float32, trainable=self.trainable_scale,
        initializer=tf_keras.initializers.Constant(self.init_log_scale))
    self.logit_bias = None
    if self.use_bias:
      self.logit_bias = self.add_weight(
          name="logit_bias", shape=(), dtype=tf.float32, trainable=True,
          initializer=tf_keras.initializers.Constant(self.init_bias))

  def call(self, inputs=None):
    del inputs
    out = {"logit_scale": tf.exp(self.log_scale)}
    if self.logit_bias is not None:
      out["logit_bias"] = tf.identity(self.logit_bias)
    return out

  def get_config(self):
    config = super().get_config()
    config.update(init_log_scale=self.init_log_scale, use_bias=self.use_bias,
                  init_bias=self.init_bias, trainable_scale=self.trainable_scale)
    return config
