"""A step-based training loop: resume from the workdir, progress, summaries, preemption.

Reliability (see docs/training.md):
- One `tf.train.Checkpoint` (model parts that train, optimizer(s) — whose `iterations` is the
  step) under a `CheckpointManager` in `<workdir>/checkpoints`; every start resumes from the latest.
  TF writes the `checkpoint` state file atomically after the data, so a save that dies half-way
  leaves the previous checkpoint restorable. A locked tower is not saved (re-loaded from its
  handle).
- Data position after a resume: a distributed iterator cannot be checkpointed, so the (seeded,
  deterministic) input stream is rebuilt and fast-forwarded by `step × batch` examples, which are
  read but not decoded: a resumed run sees exactly the examples a straight run would.
- SIGTERM (preemption): the current step finishes, a checkpoint is written, and `Preempted` is
  raised; train.py exits with `PREEMPTED_EXIT_CODE` so a scheduler restarts it.
- Loss and gradient norm are checked for NaN/Inf at every log step and before every save; a
  non-finite value raises `FloatingPointError` naming the step, and nothing is saved.
"""
import json
import os
import signal
import time

from absl import logging
import tensorflow as tf
import tf_keras

from lit_keras import losses
from lit_keras.training import builders
from lit_keras.training import step as step_lib

PREEMPTED_EXIT_CODE = 42


class Preempted(Exception):
  """Raised after a SIGTERM once the step has finished and a checkpoint is saved."""


def _checkpoint(model, optimizer, image_optimizer=None):
  """Everything that trains, plus the optimizer(s). Locked towers are not saved."""
  items = dict(optimizer=optimizer, image_head=model.image_head, text_head=model.text_head,
               logit_scale=model.logit_scale)
  if image_optimizer is not None:
    items["image_optimizer"] = image_optimizer
  if not model.image_tower.locked:
    items["image_tower"] = model.image_tower
  if not model.text_tower.locked:
    items["text_tower"] = model.text_tower
  return tf.train.Checkpoint(**items)


def _optimizers(config):
  optimizer = builders.build_optimizer(config.optim, config.total_steps)
  image_optimizer = None
  img = config.image
  if config.setting[0] != "L" and (img.get("lr_mult", 1.0) != 1.0 or img.get("unlock_at_step", 0)):
    image_optimizer = builders.build_optimizer(config.optim, config.total_steps,
                                               lr_scale=img.get("lr_mult", 1.0))
  return optimizer, image_optimizer


def restore_model(config, workdir, precomputed=False):
  """Rebuilds a run's model and restores its latest checkpoint.

  By default the real image tower is re-assembled even for a run trained on pre-computed
  embeddings (the checkpoint does not hold locked-tower weights).
  """
  model = builders.build_model(config, precomputed=precomputed)
  # Build every variable first, so that the restore happens now (not deferred to a later call,
  # when the checkpoint files may be gone).
  size = config.image.image_size
  image = (tf.zeros([1, config.precompute.dim]) if precomputed
           else tf.zeros([1, size, size, 3]))
  model({"image": image, "text": tf.constant([""])})
  optimizer, image_optimizer = _optimizers(config)
  ckpt = _checkpoint(model, optimizer, image_optimizer)
  path = tf.train.latest_checkpoint(os.path.join(workdir, "checkpoints"))
  if path is None:
    raise FileNotFoundError(f"no checkpoint in {workdir}/checkpoints")
  # Every trained part must be restored (optimizer slots need not be).
  ckpt.restore(path).assert_existing_objects_matched().expect_partial()
  return model, int(optimizer.iterations.numpy()), path


def _finite(metrics, step, manager):
  for k in ("loss", "grad_norm"):
    v = float(metrics[k])
    if not tf.math.is_finite(v):
      raise FloatingPointError(
          f"non-finite {k}={v} at step {step}; stopping without saving (last good checkpoint: "
          f"{manager.latest_checkpoint})")


def train(config, workdir, strategy, train_dataset_fn, eval_fn=None):
  """Trains `config` in `workdir`, resuming from its latest checkpoint.

  Args:
    config: the resolved ml_collections config.
    workdir: output directory (checkpoints, config.json, TensorBoard summaries).
    strategy: the tf.distribute strategy.
    train_dataset_fn: `(input_context, seed, start_step) -> tf.data.Dataset` of per-replica
      batches, positioned at `start_step`.
    eval_fn: optional `model -> dict of floats`, run every `config.eval_every` steps.

  Returns:
    the metrics of the last step (a dict of floats).
  """
  tf.io.gfile.makedirs(workdir)
  if strategy.extended.should_checkpoint:
    with tf.io.gfile.GFile(os.path.join(workdir, "config.json"), "w") as f:
      f.write(config.to_json_best_effort(indent=2))
  if config.batch_size % strategy.num_replicas_in_sync:
    raise ValueError(f"batch_size {config.batch_size} is not divisible by the "
                     f"{strategy.num_replicas_in_sync} replicas")
  tf_keras.utils.set_random_seed(config.seed)
  if config.get("deterministic", False):
    tf.config.experimental.enable_op_determinism()
  if config.get("mixed_precision", False):
    tf_keras.mixed_precision.set_global_policy("mixed_bfloat16")

  with strategy.scope():
    model = builders.build_model(config)
    optimizer, image_optimizer = _optimizers(config)
  ckpt = _checkpoint(model, optimizer, image_optimizer)
  ckpt_dir = os.path.join(workdir, "checkpoints")
  if not strategy.extended.should_checkpoint:  # a non-chief worker writes to a private dir
    ckpt_dir = os.path.join(workdir, f"worker_{strategy.cluster_resolver.task_id}", "checkpoints")
  manager = tf.train.CheckpointManager(ckpt, ckpt_dir, max_to_keep=3)
  manager.restore_or_initialize()
  start = int(optimizer.iterations.numpy())
  if start:
    logging.info("resumed from %s at step %d", manager.latest_checkpoint, start)

  dataset = strategy.distribute_datasets_from_function(
      lambda ctx: train_dataset_fn(ctx, config.seed, start))
  iterator = iter(dataset)
  batch = next(iterator)
  strategy.run(tf.function(lambda b: model(b, training=False)["zimg"]), args=(batch,))

  unlock_at = int(config.image.get("unlock_at_step", 0)) if config.setting[0] != "L" else 0
  loss_fn = losses.get_loss(config.loss)
  if config.get("global_batch_loss", True) is False:
    loss_fn = lambda *a, _f=loss_fn: _f(*a, global_batch=False)

  def make_step():
    return step_lib.make_train_step(model, optimizer, loss_fn, strategy,
                                    clip_grad_norm=config.optim.get("clip_grad_norm"),
                                    jit_compile=True if config.get("jit_compile") else None,
                                    image_optimizer=image_optimizer)

  def set_image_frozen(frozen):
    model.image_tower.trainable = not frozen
    logging.info("image tower %s at step %d", "frozen" if frozen else "unlocked", step_now)

  step_now = start
  if image_optimizer is not None:  # slots for the whole image tower, before any freezing
    with strategy.scope():
      image_optimizer.build(model.image_tower.trainable_variables)
  if unlock_at and start < unlock_at:
    set_image_frozen(True)  # delayed unlocking: locked for the first `unlock_at` steps
  train_step = make_step()

  preempted = []
  previous = signal.signal(signal.SIGTERM, lambda *_: preempted.append(True))
  writer = tf.summary.create_file_writer(os.path.join(workdir, "train")) \
      if strategy.extended.should_checkpoint else tf.summary.create_noop_writer()
  metrics, t0, last_logged = {}, time.time(), start
  try:
    for step_now in range(start + 1, config.total_steps + 1):
      if unlock_at and step_now == unlock_at + 1:
        set_image_frozen(False)
        train_step = make_step()
      metrics = train_step(batch)
      log = step_now % config.log_every == 0 or step_now == config.total_steps
      save = (step_now % config.checkpoint_every == 0 or step_now == config.total_steps
              or preempted)
      if log or save:
        _finite(metrics, step_now, manager)
      if log:
        metrics = {k: float(v) for k, v in metrics.items()}
        dt = max(time.time() - t0, 1e-9)
        steps_per_s = (step_now - last_logged) / dt
        eta = (config.total_steps - step_now) / max(steps_per_s, 1e-9)
        lr = float(optimizer.learning_rate.numpy())
        logging.info("step %d/%d  loss %.4f  i2t %.3f  t2i %.3f  t %.2f  |g| %.3f  lr %.2e  "
                     "%.2f steps/s  %.0f ex/s  ETA %.0fs", step_now, config.total_steps,
                     metrics["loss"], metrics["i2t_acc"], metrics["t2i_acc"],
                     metrics["temperature"], metrics["grad_norm"], lr, steps_per_s,
                     steps_per_s * config.batch_size, eta)
        with writer.as_default(step=step_now):
          for k, v in metrics.items():
            tf.summary.scalar(k, v)
          tf.summary.scalar("learning_rate", lr)
          if image_optimizer is not None:
            tf.summary.scalar("learning_rate_image", float(image_optimizer.learning_rate.numpy()))
          tf.summary.scalar("examples_per_s", steps_per_s * config.batch_size)
        t0, last_logged = time.time(), step_now
      if save:
        manager.save(checkpoint_number=step_now)
      if eval_fn is not None and config.get("eval_every") and (
          step_now % config.eval_every == 0 or step_now == config.total_steps):
        results = eval_fn(model)
        logging.info("eval at step %d: %s", step_now, results)
        with writer.as_default(step=step_now):
          for k, v in results.items():
            tf.summary.scalar(f"eval/{k}", v)
      if preempted:
        raise Preempted(f"SIGTERM: saved step {step_now} to {manager.latest_checkpoint}")
      if step_now < config.total_steps:
        batch = next(iterator)
  finally:
    signal.signal(signal.SIGTERM, previous)
    writer.flush()
  metrics = {k: float(v) for k, v in metrics.items()}
  if strategy.extended.should_checkpoint:
    with tf.io.gfile.GFile(os.path.join(workdir, "train_metrics.json"), "w") as f:
      json.dump({"step": int(optimizer.iterations.numpy()), **metrics}, f, indent=2)
  return metrics
