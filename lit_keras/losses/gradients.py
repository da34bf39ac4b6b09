"""The exact gradient of the global-batch loss, on any replica layout.

`global_gradients(compute, variables)` runs in replica context (inside `strategy.run`, or plainly
on one device): it records `compute()` — the model and a loss of `lit_keras.losses`, which
gathers the other replicas' embeddings differentiably — divides this replica's local loss by the
replica count, takes the tape gradient and sums it across replicas. The result is the gradient of
the global loss (see `contrastive.py` for why), identical on every replica, with its global norm;
the loss and metrics come back as their global values (means over replicas), also identical on
every replica. The Keras `train_step` of `LiTModel` and the trainer's multi-step loop both use it.
"""
from absl import logging
import tensorflow as tf


def _dense(g):
  # Embedding-table gradients arrive as IndexedSlices; all-reduce and norms want dense tensors.
  return tf.convert_to_tensor(g) if isinstance(g, tf.IndexedSlices) else g


def global_mean(values):
  """{name: scalar} → the same names, each the mean over replicas (one all-reduce)."""
  ctx = tf.distribute.get_replica_context()
  if ctx is None or ctx.num_replicas_in_sync == 1:
    return dict(values)
  names = sorted(values)
  stacked = tf.stack([tf.cast(values[k], tf.float32) for k in names])
  mean = ctx.all_reduce(tf.distribute.ReduceOp.MEAN, stacked)
  return {k: mean[i] for i, k in enumerate(names)}


def num_replicas():
  """The replica count of the current replica context (1 outside any strategy)."""
  ctx = tf.distribute.get_replica_context()
  return ctx.num_replicas_in_sync if ctx is not None else 1


def global_gradients(compute, variables):
  """Gradients of the global-batch loss (see the module docstring).

  Args:
    compute: `() -> (local loss, metrics dict)`, run under the tape.
    variables: the variables to differentiate (a locked tower has none; the tape watches exactly
      these, so nothing else is recorded).

  Returns:
    (variables, gradients, metrics): the variables that received a gradient, their gradients
    summed over replicas (dense), and the global metrics including "loss" and "grad_norm".
  """
  with tf.GradientTape(watch_accessed_variables=False) as tape:
    tape.watch(variables)
    loss, metrics = compute()
    scaled_loss = loss / num_replicas()
  grads = tape.gradient(scaled_loss, variables)
  return reduce_gradients(variables, grads, loss, metrics)


def reduce_gradients(variables, grads, loss, metrics):
  """This replica's gradients of its loss / replica count → (used variables, the gradients
  summed over replicas, global metrics with "loss" and "grad_norm")."""
  # Variables that take no part in the loss (e.g. a hub BERT's pooler under mean pooling) get no
  # gradient and are left alone. Decided at trace time, so this costs nothing per step.
  unused = [v.name for v, g in zip(variables, grads) if g is None]
  if unused:
    logging.warning("No gradient for %d trainable variables (not used by the loss): %s",
                    len(unused), unused[:8])
  pairs = [(v, _dense(g)) for v, g in zip(variables, grads) if g is not None]
  used = [v for v, _ in pairs]
  grads = [g for _, g in pairs]
  ctx = tf.distribute.get_replica_context()
  if num_replicas() > 1 and grads:
    grads = ctx.all_reduce(tf.distribute.ReduceOp.SUM, grads)
  metrics = dict(metrics, loss=loss)
  metrics = global_mean(metrics)
  metrics["grad_norm"] = tf.linalg.global_norm(grads) if grads else tf.constant(0.0)
  return used, list(grads), metrics
