"""Projection from a tower's feature space to the shared embedding space."""
import tf_keras

from lit_keras import serialization


@serialization.register
class ProjectionHead(tf_keras.layers.Layer):
  """Linear (default) or MLP projection to the shared embedding size.

  LiT and big_vision use a single linear layer on top of each tower; `hidden_dims` adds an MLP
  (Dense + activation per hidden size) before the final linear map, as some CLIP variants do.
  The output is *not* normalised: the model L2-normalises, so that the norm can be inspected.

  Args:
    output_dim: size of the shared embedding space.
    hidden_dims: sizes of hidden layers of an optional MLP; empty for a linear head.
    activation: activation of the hidden layers.
    use_bias: whether the layers have a bias.
    kernel_initializer: initializer of every kernel.

  Example:
  >>> head = ProjectionHead(128)
  >>> head(tf.zeros([2, 384])).shape
  TensorShape([2, 128])
  """

  def __init__(self, output_dim, hidden_dims=(), activation="gelu", use_bias=True,
               kernel_initializer="glorot_uniform", **kwargs):
    super().__init__(**kwargs)
    self.output_dim = int(output_dim)
    self.hidden_dims = tuple(int(d) for d in hidden_dims)
    self.activation = activation
    self.use_bias = use_bias
    self.kernel_initializer = tf_keras.initializers.serialize(
        tf_keras.initializers.get(kernel_initializer))
    # A fresh initializer instance per layer: one unseeded instance reused would give every
    # same-shaped layer identical initial weights.
    new_init = lambda: tf_keras.initializers.deserialize(self.kernel_initializer)
    self._hidden = [
        tf_keras.layers.Dense(d, activation=activation, use_bias=use_bias,
                              kernel_initializer=new_init(), name=f"hidden_{i}")
        for i, d in enumerate(self.hidden_dims)
    ]
    self._out = tf_keras.layers.Dense(self.output_dim, use_bias=use_bias,
                                      kernel_initializer=new_init(), name="out")

  def call(self, x):
    for layer in self._hidden:
      x = layer(x)
    return self._out(x)

  def get_config(self):
    config = super().get_config()
    config.update(
        output_dim=self.output_dim,
        hidden_dims=list(self.hidden_dims),
        activation=self.activation,
        use_bias=self.use_bias,
        kernel_initializer=self.kernel_initializer,
    )
    return config
