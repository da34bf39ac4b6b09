"""AdamW with its dense update in one fused kernel per variable.

`tf_keras.optimizers.AdamW` updates each variable with about a dozen separate element-wise ops
(two moment updates, a square root, a division, four variable writes), each a full pass over the
variable's memory. For a small text tower trained from pre-computed image embeddings those passes
are a sizable part of the step on a CPU. `AdamW` here is that optimizer with its dense update done
by TensorFlow's own fused Adam kernel (`ResourceApplyAdam`, the kernel of the Keras 2 legacy Adam,
with CPU, GPU and XLA/TPU implementations): one pass per variable.

It is a subclass, so the variables, the weight decay (and `exclude_from_weight_decay`), the
learning-rate schedules, `get_config` and checkpoints are tf_keras's: a checkpoint written by
either optimizer restores into the other. The update is Adam's, computed in the same order; the
only difference is float32 rounding of the two constants: the kernel forms `1 - beta_1` and
`1 - beta_2` from the float32 betas (`1 - 0.999` becomes 0.00099998713 instead of 0.001).
Sparse gradients (`tf.IndexedSlices`) and `amsgrad` keep tf_keras's own update.
"""
import tensorflow as tf
import tf_keras

from lit_keras import serialization


@serialization.register
class AdamW(tf_keras.optimizers.AdamW):
  """`tf_keras.optimizers.AdamW` whose dense update is TensorFlow's fused Adam kernel.

  Same constructor arguments as `tf_keras.optimizers.AdamW`.
  """

  def update_step(self, gradient, variable):
    if isinstance(gradient, tf.IndexedSlices) or self.amsgrad:
      return super().update_step(gradient, variable)
    dtype = variable.dtype
    local_step = tf.cast(self.iterations + 1, dtype)
    beta_1 = tf.cast(self.beta_1, dtype)
    beta_2 = tf.cast(self.beta_2, dtype)
    index = self._index_dict[self._var_key(variable)]
    return tf.raw_ops.ResourceApplyAdam(
        var=variable.handle, m=self._momentums[index].handle,
        v=self._velocities[index].handle, beta1_power=tf.pow(beta_1, local_step),
        beta2_power=tf.pow(beta_2, local_step), lr=tf.cast(self.learning_rate, dtype),
        beta1=beta_1, beta2=beta_2, epsilon=tf.cast(self.epsilon, dtype), grad=gradient)
