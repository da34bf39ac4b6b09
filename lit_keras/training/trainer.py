"""A step-based training loop: checkpoint/resume from the workdir, progress, summaries."""
import json
import os
import time

from absl import logging
import tensorflow as tf

from lit_keras import losses
from lit_keras.training import builders
from lit_keras.training import step as step_lib


def _checkpoint(model, optimizer):
  """Everything that trains, plus the optimizer (its `iterations` is the step).

  A locked tower is not saved: it is re-loaded from its handle, so a checkpoint of a run with a
  billion-parameter frozen ViT stays the size of the text tower.
  """
  items = dict(optimizer=optimizer, image_head=model.image_head, text_head=model.text_head,
               logit_scale=model.logit_scale)
  if not model.image_tower.locked:
    items["image_tower"] = model.image_tower
  if not model.text_tower.locked:
    items["text_tower"] = model.text_tower
  return tf.train.Checkpoint(**items)


def restore_model(config, workdir):
  """Rebuilds the model of a run from its config and restores its latest checkpoint."""
  model = builders.build_model(config)
  optimizer = builders.build_optimizer(config.optim, config.total_steps)
  ckpt = _checkpoint(model, optimizer)
  path = tf.train.latest_checkpoint(os.path.join(workdir, "checkpoints"))
  if path is None:
    raise FileNotFoundError(f"no checkpoint in {workdir}/checkpoints")
  ckpt.restore(path).expect_partial()
  return model, int(optimizer.iterations.numpy()), path


def train(config, workdir, strategy, train_dataset_fn):
  """Trains `config` in `workdir`, resuming from its latest checkpoint.

  Args:
    config: the resolved ml_collections config.
    workdir: output directory (checkpoints, config.json, TensorBoard summaries).
    strategy: the tf.distribute strategy.
    train_dataset_fn: `(input_context, seed) -> tf.data.Dataset` of per-replica batches
      `{"image", "text"}` (text tokenized), for `distribute_datasets_from_function`.

  Returns:
    the metrics of the last step (a dict of floats).
  """
  tf.io.gfile.makedirs(workdir)
  with tf.io.gfile.GFile(os.path.join(workdir, "config.json"), "w") as f:
    f.write(config.to_json_best_effort(indent=2))
  if config.batch_size % strategy.num_replicas_in_sync:
    raise ValueError(f"batch_size {config.batch_size} is not divisible by the "
                     f"{strategy.num_replicas_in_sync} replicas")

  with strategy.scope():
    model = builders.build_model(config)
    optimizer = builders.build_optimizer(config.optim, config.total_steps)
  ckpt = _checkpoint(model, optimizer)
  manager = tf.train.CheckpointManager(ckpt, os.path.join(workdir, "checkpoints"), max_to_keep=3)
  manager.restore_or_initialize()
  start = int(optimizer.iterations.numpy())
  if start:
    logging.info("resumed from %s at step %d", manager.latest_checkpoint, start)
  if start >= config.total_steps:
    logging.info("already trained %d/%d steps", start, config.total_steps)

  # Resuming reseeds the data order by the step (a distributed iterator cannot be checkpointed).
  dataset = strategy.distribute_datasets_from_function(
      lambda ctx: train_dataset_fn(ctx, config.seed + start))
  iterator = iter(dataset)
  first = next(iterator)
  strategy.run(tf.function(lambda b: model(b, training=False)["zimg"]), args=(first,))
  train_step = step_lib.make_train_step(
      model, optimizer, losses.get_loss(config.loss), strategy,
      clip_grad_norm=config.optim.get("clip_grad_norm"))

  writer = tf.summary.create_file_writer(os.path.join(workdir, "train"))
  batch, metrics, t0, last_logged = first, {}, time.time(), start
  for step in range(start + 1, config.total_steps + 1):
    metrics = train_step(batch)
    if step % config.log_every == 0 or step == config.total_steps:
      metrics = {k: float(v) for k, v in metrics.items()}
      for k, v in metrics.items():
        if not tf.math.is_finite(v):
          raise FloatingPointError(f"non-finite {k}={v} at step {step}; last good checkpoint "
                                   f"kept: {manager.latest_checkpoint}")
      dt = time.time() - t0
      steps_per_s = (step - last_logged) / max(dt, 1e-9)
      eta = (config.total_steps - step) / max(steps_per_s, 1e-9)
      lr = float(optimizer.learning_rate)
      logging.info("step %d/%d  loss %.4f  i2t %.3f  t2i %.3f  t %.2f  lr %.2e  %.2f steps/s"
                   "  %.0f ex/s  ETA %.0fs", step, config.total_steps, metrics["loss"],
                   metrics["i2t_acc"], metrics["t2i_acc"], metrics["temperature"], lr,
                   steps_per_s, steps_per_s * config.batch_size, eta)
      with writer.as_default(step=step):
        for k, v in metrics.items():
          tf.summary.scalar(k, v)
        tf.summary.scalar("learning_rate", lr)
        tf.summary.scalar("examples_per_s", steps_per_s * config.batch_size)
      t0, last_logged = time.time(), step
    if step % config.checkpoint_every == 0 or step == config.total_steps:
      manager.save(checkpoint_number=step)
    if step < config.total_steps:
      batch = next(iterator)
  writer.flush()
  with tf.io.gfile.GFile(os.path.join(workdir, "train_metrics.json"), "w") as f:
    json.dump({"step": int(optimizer.iterations.numpy()), **metrics}, f, indent=2)
  return metrics
