"""A training step function for custom loops: exact on any number of replicas.

`make_train_step(model, optimizer, loss_fn, strategy)` compiles the `LiTModel` with the optimizer
and the loss and returns a `tf.function` that runs `model.train_step_values` on every replica
(`strategy.run`) — the step `fit()` and the trainer run too — and returns the metrics' true global
values. The same code runs under the default strategy (one device), MirroredStrategy,
MultiWorker and TPUStrategy:

- each replica computes its local mean loss over its rows against the global batch (the losses
  gather differentiably), divides it by the replica count, and takes gradients;
- the gradients are summed across replicas explicitly (so the gradient norm and clipping see the
  true global gradient) and applied once;
- the reported loss is the mean of the replicas' local losses, i.e. the true global loss, not a
  multiple of it.

Locked towers hold no trainable variables and run with tape recording stopped; the tape watches
only the model's trainable variables, so a locked tower's ops are never recorded, its activations
are not kept and its backward pass is never built.
"""
import tensorflow as tf


def compute_loss(model, batch, loss_fn, training=True):
  """Runs the model and the loss on one replica's batch. Returns (loss, metrics dict)."""
  out = model(batch, training=training)
  loss, metrics = loss_fn(out["zimg"], out["ztxt"], out["logit_scale"], out.get("logit_bias"))
  metrics = dict(metrics)
  metrics["img/norm"] = out["img/norm"]
  metrics["txt/norm"] = out["txt/norm"]
  return loss, metrics


def build_optimizers(model, optimizer, image_optimizer=None, strategy=None):
  """Creates the optimizers' slots before any step is traced (variables cannot be created in a
  traced step)."""
  strategy = strategy or tf.distribute.get_strategy()
  image_ids = {id(v) for v in model.image_tower.trainable_variables} if image_optimizer else set()
  with strategy.scope():
    for opt, mine in ((optimizer, False), (image_optimizer, True)):
      if opt is not None and not getattr(opt, "_built", False):
        opt.build([v for v in model.trainable_variables if (id(v) in image_ids) == mine])


def make_train_step(model, optimizer, loss_fn, strategy=None, clip_grad_norm=None,
                    jit_compile=None, image_optimizer=None, chunk_size=None):
  """Builds the distributed training step.

  Args:
    model: a `LiTModel` created under `strategy.scope()` and already built (called once on a
      batch).
    optimizer: a tf_keras optimizer, created under `strategy.scope()`.
    loss_fn: `(zimg, ztxt, logit_scale, logit_bias) -> (loss, metrics)`, e.g. from `get_loss`.
    strategy: the `tf.distribute` strategy (default: the current one).
    clip_grad_norm: clip the global gradient norm to this value (None: no clipping).
    jit_compile: XLA-compile the replica step (what a TPU always does).
    image_optimizer: a second optimizer for the image tower's variables (the paper's smaller
      learning rate for an unlocked image tower); None: one optimizer for everything.
    chunk_size: compute each replica's gradients `chunk_size` rows at a time, exactly
      (`LiTModel.compile`, `models.gradient_cache`); None: the whole batch at once.

  Returns:
    `train_step(batch)`: `batch` is a (distributed) `{"image", "text"}` dict; returns a dict of
    scalar tensors: "loss", "grad_norm", and the loss's metrics, all global values.
  """
  strategy = strategy or tf.distribute.get_strategy()
  if not model.built:
    raise ValueError("Build the model before making the train step: call it once on a batch "
                     "(under MirroredStrategy/TPUStrategy through strategy.run).")
  with strategy.scope():
    model.compile(optimizer, loss=loss_fn, image_optimizer=image_optimizer,
                  clip_grad_norm=clip_grad_norm, chunk_size=chunk_size)
  build_optimizers(model, optimizer, image_optimizer, strategy)
  replica_step = tf.function(model.train_step_values, jit_compile=jit_compile)

  @tf.function
  def train_step(batch):
    per_replica = strategy.run(replica_step, args=(batch,))
    # Every replica holds the same global values.
    return {k: strategy.experimental_local_results(v)[0] for k, v in per_replica.items()}

  return train_step
