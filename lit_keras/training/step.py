"""One training step that is exact on any number of replicas.

`make_train_step(model, optimizer, loss_fn, strategy)` returns a `tf.function` that runs the step
on every replica (`strategy.run`) and returns the metrics reduced to their true global values.
The same code runs under the default strategy (one device), MirroredStrategy, MultiWorker and
TPUStrategy:

- each replica computes its local mean loss over its rows against the global batch (the losses
  gather differentiably), divides it by the replica count, and takes gradients;
- the gradients are summed across replicas explicitly (so the gradient norm and clipping see the
  true global gradient) and applied once;
- the reported loss is the mean of the replicas' local losses, i.e. the true global loss, not a
  multiple of it (tf_keras `fit` would SUM returned values on MirroredStrategy).

Locked towers hold no trainable variables and run with tape recording stopped; the tape watches
only the model's trainable variables, so a locked tower's ops are never recorded, its activations
are not kept and its backward pass is never built.
"""
from absl import logging
import tensorflow as tf


def compute_loss(model, batch, loss_fn, training=True):
  """Runs the model and the loss on one replica's batch. Returns (loss, metrics dict)."""
  out = model(batch, training=training)
  loss, metrics = loss_fn(out["zimg"], out["ztxt"], out["logit_scale"], out.get("logit_bias"))
  metrics = dict(metrics)
  metrics["img/norm"] = out["img/norm"]
  metrics["txt/norm"] = out["txt/norm"]
  return loss, metrics


def _dense(g):
  # Embedding-table gradients arrive as IndexedSlices; all-reduce and norms want dense tensors.
  return tf.convert_to_tensor(g) if isinstance(g, tf.IndexedSlices) else g


def make_train_step(model, optimizer, loss_fn, strategy=None, clip_grad_norm=None,
                    jit_compile=None, image_optimizer=None):
  """Builds the distributed training step.

  Args:
    model: a `LiTModel` (or any model with the same output dict), created under
      `strategy.scope()` and already built (called once on a batch).
    optimizer: a tf_keras optimizer, created under `strategy.scope()`.
    loss_fn: `(zimg, ztxt, logit_scale, logit_bias) -> (loss, metrics)`, e.g. from `get_loss`.
    strategy: the `tf.distribute` strategy (default: the current one).
    clip_grad_norm: clip the global gradient norm to this value (None: no clipping).
    jit_compile: passed to `tf.function` (XLA).
    image_optimizer: a second optimizer for the image tower's variables (the paper's smaller
      learning rate for an unlocked image tower); None: one optimizer for everything.

  Returns:
    `train_step(batch)`: `batch` is a (distributed) `{"image", "text"}` dict; returns a dict of
    scalar tensors: "loss", "grad_norm", and the loss's metrics, all global values.
  """
  strategy = strategy or tf.distribute.get_strategy()
  if not model.built:
    raise ValueError("Build the model before making the train step: call it once on a batch "
                     "(under MirroredStrategy/TPUStrategy through strategy.run).")
  image_ids = {id(v) for v in model.image_tower.trainable_variables} if image_optimizer else set()
  # Optimizer slots must exist before tracing: variables cannot be created in a tf.function step.
  with strategy.scope():
    for opt, mine in ((optimizer, False), (image_optimizer, True)):
      if opt is not None and not getattr(opt, "_built", False):
        opt.build([v for v in model.trainable_variables if (id(v) in image_ids) == mine])

  def replica_step(batch):
    ctx = tf.distribute.get_replica_context()
    num_replicas = ctx.num_replicas_in_sync
    variables = model.trainable_variables
    # Watch exactly the Keras-trainable variables (hub SavedModel variables stay `trainable` as tf
    # Variables inside a frozen hub.KerasLayer; a default tape would watch them too).
    with tf.GradientTape(watch_accessed_variables=False) as tape:
      tape.watch(variables)
      loss, metrics = compute_loss(model, batch, loss_fn, training=True)
      scaled_loss = loss / num_replicas
    grads = tape.gradient(scaled_loss, variables)
    # Variables that take no part in the loss (e.g. a hub BERT's pooler under mean pooling) get
    # no gradient; they are left alone. Decided at trace time, so this costs nothing per step.
    unused = [v.name for v, g in zip(variables, grads) if g is None]
    if unused:
      logging.warning("No gradient for %d trainable variables (not used by the loss): %s",
                      len(unused), unused[:8])
    variables, grads = zip(*[(v, _dense(g)) for v, g in zip(variables, grads) if g is not None])
    variables, grads = list(variables), list(grads)
    if num_replicas > 1:
      grads = ctx.all_reduce(tf.distribute.ReduceOp.SUM, grads)
    grad_norm = tf.linalg.global_norm(grads)
    if clip_grad_norm:
      grads, _ = tf.clip_by_global_norm(grads, clip_grad_norm, use_norm=grad_norm)
    main = [(g, v) for g, v in zip(grads, variables) if id(v) not in image_ids]
    optimizer.apply_gradients(main, skip_gradients_aggregation=True)
    if image_optimizer is not None:
      image = [(g, v) for g, v in zip(grads, variables) if id(v) in image_ids]
      if image:
        image_optimizer.apply_gradients(image, skip_gradients_aggregation=True)
    metrics["loss"] = loss
    metrics["grad_norm"] = grad_norm
    return metrics

  @tf.function(jit_compile=jit_compile)
  def train_step(batch):
    per_replica = strategy.run(replica_step, args=(batch,))
    # Equal local batch sizes (drop_remainder): the mean of the replicas' means is the global mean.
    return {k: strategy.reduce(tf.distribute.ReduceOp.MEAN, v, axis=None)
            for k, v in per_replica.items()}

  return train_step
