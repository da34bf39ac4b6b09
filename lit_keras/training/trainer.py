"""A step-based training loop: resume from the workdir, progress, summaries, preemption.

Reliability (see docs/training.md):
- One `tf.train.Checkpoint` (model parts that train, optimizer(s) — whose `iterations` is the
  step) under a `CheckpointManager` in `<workdir>/checkpoints`; every start resumes from the latest.
  TF writes the `checkpoint` state file atomically after the data, so a save that dies half-way
  leaves the previous checkpoint restorable. A locked tower is not saved (re-loaded from its
  handle).
- Data position after a resume: a distributed iterator cannot be checkpointed, so the (seeded,
  deterministic) input stream is rebuilt and fast-forwarded to the resumed step.
- SIGTERM (preemption): the current step finishes, a checkpoint is written, and `Preempted` is
  raised; train.py exits with `PREEMPTED_EXIT_CODE` so a scheduler restarts it.
- Loss and gradient norm are checked for NaN/Inf at every log step and before every save; a
  non-finite value raises `FloatingPointError` naming the step, and nothing is saved.
- A corrupt TFRecord shard raises `CorruptDataError` naming the file and the byte offset.
"""
import contextlib
import json
import os
import signal
import time

from absl import logging
import tensorflow as tf
import tf_keras

from lit_keras.data import pipeline
from lit_keras.evaluation import evaluators as evaluators_lib
from lit_keras.training import step as step_lib
from lit_keras.training import task as task_lib

PREEMPTED_EXIT_CODE = 42


class Preempted(Exception):
  """Raised after a SIGTERM once the step has finished and a checkpoint is saved."""


def checkpoint(model, optimizer, image_optimizer=None):
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


def restore_model(config, workdir, precomputed=False):
  """Rebuilds a run's model and restores its latest checkpoint. Returns (model, step, path).

  By default the real image tower is re-assembled even for a run trained on pre-computed
  embeddings (the checkpoint does not hold locked-tower weights).
  """
  task = task_lib.LiTTask(config)
  model = task.build_model(precomputed=precomputed)
  # Build every variable first, so that the restore happens now (not deferred to a later call,
  # when the checkpoint files may be gone).
  size = config.image.image_size
  image = (tf.zeros([1, config.precompute.dim]) if precomputed
           else tf.zeros([1, size, size, 3]))
  model({"image": image, "text": tf.constant([""])})
  optimizer, image_optimizer = task.build_optimizers()
  ckpt = checkpoint(model, optimizer, image_optimizer)
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


@contextlib.contextmanager
def _sigterm_flag():
  """Yields a list that becomes non-empty when SIGTERM arrives (the step then finishes)."""
  flag = []
  previous = signal.signal(signal.SIGTERM, lambda *_: flag.append(True))
  try:
    yield flag
  finally:
    signal.signal(signal.SIGTERM, previous)


def _setup(config):
  """Seeds, determinism and precision, before anything is built."""
  tf_keras.utils.set_random_seed(config.seed)
  if config.get("deterministic", False):
    tf.config.experimental.enable_op_determinism()
  if config.get("mixed_precision", False):
    tf_keras.mixed_precision.set_global_policy("mixed_bfloat16")


def _checkpoint_manager(ckpt, workdir, strategy):
  ckpt_dir = os.path.join(workdir, "checkpoints")
  if not strategy.extended.should_checkpoint:  # a non-chief worker writes to a private dir
    ckpt_dir = os.path.join(workdir, f"worker_{strategy.cluster_resolver.task_id}", "checkpoints")
  return tf.train.CheckpointManager(ckpt, ckpt_dir, max_to_keep=3)


class _Progress:
  """The progress line and the TensorBoard summaries (on the host, from returned values)."""

  def __init__(self, config, workdir, strategy, optimizer, image_optimizer, start):
    self.config, self.optimizer, self.image_optimizer = config, optimizer, image_optimizer
    self.writer = (tf.summary.create_file_writer(os.path.join(workdir, "train"))
                   if strategy.extended.should_checkpoint else tf.summary.create_noop_writer())
    self.t0, self.last = time.time(), start

  def log(self, step, metrics):
    c = self.config
    steps_per_s = (step - self.last) / max(time.time() - self.t0, 1e-9)
    eta = (c.total_steps - step) / max(steps_per_s, 1e-9)
    lr = float(self.optimizer.learning_rate.numpy())
    logging.info("step %d/%d  loss %.4f  i2t %.3f  t2i %.3f  t %.2f  |g| %.3f  lr %.2e  "
                 "%.2f steps/s  %.0f ex/s  ETA %.0fs", step, c.total_steps, metrics["loss"],
                 metrics["i2t_acc"], metrics["t2i_acc"], metrics["temperature"],
                 metrics["grad_norm"], lr, steps_per_s, steps_per_s * c.batch_size, eta)
    with self.writer.as_default(step=step):
      for k, v in metrics.items():
        tf.summary.scalar(k, v)
      tf.summary.scalar("learning_rate", lr)
      if self.image_optimizer is not None:
        tf.summary.scalar("learning_rate_image", float(self.image_optimizer.learning_rate.numpy()))
      tf.summary.scalar("examples_per_s", steps_per_s * c.batch_size)
    self.t0, self.last = time.time(), step

  def eval_results(self, step, results):
    numbers = {f"{name}/{k}": v for name, metrics in results.items()
               for k, v in metrics.items() if isinstance(v, float)}
    logging.info("eval at step %d: %s", step,
                 "  ".join(f"{k} {v:.3f}" for k, v in numbers.items()))
    with self.writer.as_default(step=step):
      for k, v in numbers.items():
        tf.summary.scalar(f"eval/{k}", v)


class _DelayedUnlock:
  """`image.unlock_at_step=K`: an unlocked image tower stays frozen for K steps (the step is
  re-traced once, at K)."""

  def __init__(self, config, model, start):
    self.model = model
    self.at = int(config.image.get("unlock_at_step", 0)) if config.setting[0] != "L" else 0
    if self.at and start < self.at:
      self._set_frozen(True, start)

  def _set_frozen(self, frozen, step):
    self.model.image_tower.trainable = not frozen
    logging.info("image tower %s at step %d", "frozen" if frozen else "unlocked", step)

  def unlocks_at(self, step):
    if self.at and step == self.at + 1:
      self._set_frozen(False, step)
      return True
    return False


def train(task, workdir, strategy):
  """Trains `task` in `workdir`, resuming from its latest checkpoint.

  Args:
    task: a prepared `LiTTask` (concrete paths; pre-computed embeddings named).
    workdir: output directory (checkpoints, config.json, TensorBoard summaries).
    strategy: the tf.distribute strategy.

  Returns:
    the metrics of the last step (a dict of floats).
  """
  config = task.config
  task.validate(strategy.num_replicas_in_sync)
  if strategy.extended.should_checkpoint:
    task_lib.save_config(config, workdir)
  _setup(config)
  with strategy.scope():
    model = task.build_model()
    optimizer, image_optimizer = task.build_optimizers()
  manager = _checkpoint_manager(checkpoint(model, optimizer, image_optimizer), workdir, strategy)
  manager.restore_or_initialize()
  start = int(optimizer.iterations.numpy())
  if start:
    logging.info("resumed from %s at step %d", manager.latest_checkpoint, start)

  train_files = config.precompute.train if config.precompute.enabled else config.data.train
  iterator = iter(strategy.distribute_datasets_from_function(
      lambda ctx: task.build_inputs(ctx, start)))
  with pipeline.naming_corruption(train_files):
    batch = next(iterator)
  strategy.run(tf.function(lambda b: model(b, training=False)["zimg"]), args=(batch,))
  if image_optimizer is not None:  # slots for the whole image tower, before any freezing
    with strategy.scope():
      image_optimizer.build(model.image_tower.trainable_variables)
  unlock = _DelayedUnlock(config, model, start)

  def make_step():
    return step_lib.make_train_step(model, optimizer, task.build_loss(), strategy,
                                    clip_grad_norm=config.optim.get("clip_grad_norm"),
                                    jit_compile=True if config.get("jit_compile") else None,
                                    image_optimizer=image_optimizer)

  train_step = make_step()
  evals = task.build_evaluators(during_training=True) if config.get("eval_every") else []
  progress = _Progress(config, workdir, strategy, optimizer, image_optimizer, start)
  metrics = {}
  with _sigterm_flag() as preempted:
    try:
      for step in range(start + 1, config.total_steps + 1):
        if unlock.unlocks_at(step):
          train_step = make_step()
        metrics = train_step(batch)
        last = step == config.total_steps
        log = step % config.log_every == 0 or last
        save = step % config.checkpoint_every == 0 or last or preempted
        if log or save:
          _finite(metrics, step, manager)
        if log:
          metrics = {k: float(v) for k, v in metrics.items()}
          progress.log(step, metrics)
        if save:
          manager.save(checkpoint_number=step)
        if evals and (step % config.eval_every == 0 or last):
          progress.eval_results(step, evaluators_lib.evaluate(evals, model))
        if preempted:
          raise Preempted(f"SIGTERM: saved step {step} to {manager.latest_checkpoint}")
        if not last:
          with pipeline.naming_corruption(train_files):
            batch = next(iterator)
    finally:
      progress.writer.flush()
  metrics = {k: float(v) for k, v in metrics.items()}
  if strategy.extended.should_checkpoint:
    with tf.io.gfile.GFile(os.path.join(workdir, "train_metrics.json"), "w") as f:
      json.dump({"step": int(optimizer.iterations.numpy()), **metrics}, f, indent=2)
  return metrics
