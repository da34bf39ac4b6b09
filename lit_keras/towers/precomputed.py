"""A stand-in for a locked image tower whose features were computed once, ahead of training."""
import tensorflow as tf
import tf_keras

from lit_keras import serialization
from lit_keras.towers import base


@serialization.register
class PrecomputedImageTower(base.Tower):
  """Passes pre-computed image features through; always locked, holds no weights.

  LiT's main speed/memory win: with a locked image tower its features can be computed once and
  training needs only the text tower and the heads in memory. The `source` records which tower
  (handle and preprocessing) produced the features, so that the full model can be re-assembled
  for export and so that caches are never mixed up.

  Args:
    feature_dim: size of the pre-computed feature vectors.
    source: a description of the tower that produced them (e.g. its `get_config()`).
  """

  allowed_states = (base.LOCKED,)

  def __init__(self, feature_dim, source=None, state=base.LOCKED, **kwargs):
    kwargs["dtype"] = "float32"
    super().__init__(state=state, **kwargs)
    self.feature_dim = int(feature_dim)
    self.source = source

  def encode(self, features, training=None):
    features = tf.convert_to_tensor(features, tf.float32)
    features.shape.assert_is_compatible_with([None, self.feature_dim])
    return tf.stop_gradient(features)

  def get_config(self):
    config = super().get_config()
    config.update(feature_dim=self.feature_dim, source=self.source)
    return config
