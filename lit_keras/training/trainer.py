"""Training a LiT task: checkpoints, resume, progress, preemption, on Orbit (`runner`).

Reliability (see docs/training.md):
- One `tf.train.Checkpoint` (model parts that train, optimizer(s) — whose `iterations` is the
  step) under a `CheckpointManager` in `<workdir>/checkpoints`; every start resumes from the
  latest. TF writes the `checkpoint` state file atomically after the data, so a save that dies
  half-way leaves the previous checkpoint restorable. A locked tower is not saved (re-loaded from
  its handle).
- Data position: the input pipeline is a deterministic function of the step
  (`pipeline.train_dataset`), rebuilt at the resumed step, so a resumed run sees exactly the
  examples a straight run sees, on any replica layout.
- `steps_per_loop` steps run in one call; checkpoints (every `checkpoint_every` steps),
  evaluation (every `eval_every`), the progress line and the NaN/SIGTERM checks happen at loop
  boundaries, which fall on those multiples.
- SIGTERM (preemption): the current loop finishes, a checkpoint is written, and `Preempted` is
  raised; train.py exits with `PREEMPTED_EXIT_CODE` so a scheduler restarts it.
- A non-finite loss or gradient norm at any step raises `FloatingPointError` naming the step
  before the loop's checkpoint is written.
- A corrupt TFRecord shard raises `CorruptDataError` naming the file and the byte offset.
"""
import json
import os

from absl import logging
import orbit
import tensorflow as tf
import tf_keras

from lit_keras import errors
from lit_keras.data import pipeline
from lit_keras.training import runner
from lit_keras.training import step as step_lib
from lit_keras.training import task as task_lib

PREEMPTED_EXIT_CODE = runner.PREEMPTED_EXIT_CODE
Preempted = runner.Preempted


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


def restore_model(config, workdir, precomputed=False, strategy=None):
  """Rebuilds a run's model (under `strategy`'s scope) and restores its latest checkpoint.
  Returns (model, step, path).

  By default the real image tower is re-assembled even for a run trained on pre-computed
  embeddings (the checkpoint does not hold locked-tower weights).
  """
  strategy = strategy or tf.distribute.get_strategy()
  task = task_lib.LiTTask(config)
  with strategy.scope():
    model = task.build_model(precomputed=precomputed)
    optimizer, image_optimizer = task.build_optimizers()
  # Build every variable first, so that the restore happens now (not deferred to a later call,
  # when the checkpoint files may be gone). On one device by an eager call (nothing to trace);
  # under a strategy through `strategy.run`: a hub module loaded under a strategy cannot be
  # called in cross-replica context.
  size = config.image.image_size
  shape = [1, config.precompute.dim] if precomputed else [1, size, size, 3]
  build = lambda: model({"image": tf.zeros(shape), "text": tf.constant([""])})["zimg"]
  if strategy is tf.distribute.get_strategy():
    build()
  else:
    strategy.run(tf.function(build))
  ckpt = checkpoint(model, optimizer, image_optimizer)
  path = tf.train.latest_checkpoint(os.path.join(workdir, "checkpoints"))
  if path is None:
    raise FileNotFoundError(f"no checkpoint in {workdir}/checkpoints")
  # Every trained part must be restored (optimizer slots need not be).
  with strategy.scope():
    ckpt.restore(path).assert_existing_objects_matched().expect_partial()
  return model, int(optimizer.iterations.numpy()), path


def setup(config):
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


def build_model(task, strategy):
  """The task's model under `strategy`, every variable created on every replica from the
  input's shapes, with the initial values of a one-device run: initializers draw differently
  under a distribution strategy, so the model is first built eagerly on the host (right after
  seeding, as on one device) and copied — every replica layout starts from the same weights."""
  spec = task.build_inputs(tf.distribute.InputContext()).element_spec
  dummy = lambda: tf.nest.map_structure(lambda s: tf.zeros([1] + s.shape[1:], s.dtype), spec)
  reference = task.build_model()
  reference(dummy(), training=False)
  if strategy is tf.distribute.get_strategy():
    return reference
  with strategy.scope():
    model = task.build_model()
  strategy.run(tf.function(lambda: model(dummy(), training=False)["zimg"]))
  model.set_weights(reference.get_weights())
  return model


class _DelayedUnlock:
  """`image.unlock_at_step=K`: an unlocked image tower stays frozen for K steps."""

  def __init__(self, config, model, start):
    self.model = model
    self.at = int(config.image.get("unlock_at_step", 0)) if config.setting[0] != "L" else 0
    if self.at and start < self.at:
      self._set_frozen(True, start)

  def _set_frozen(self, frozen, step):
    self.model.image_tower.trainable = not frozen
    logging.info("image tower %s at step %d", "frozen" if frozen else "unlocked", step)

  def maybe_unlock(self, step, trainer):
    if self.at and step == self.at:
      self._set_frozen(False, step)
      trainer.reset()  # the loop is traced again, with the image tower's variables


def _flatten(d, prefix=""):
  out = {}
  for k, v in d.items():
    if isinstance(v, dict):
      out.update(_flatten(v, f"{prefix}{k}."))
    else:
      out[f"{prefix}{k}"] = v
  return out


# Fields a resumed run may change freely (they do not shape the model).
_SCHEDULE_FIELDS = ("total_steps", "log_every", "checkpoint_every", "eval_every", "steps_per_loop")


def _restore(ckpt, latest, config, workdir, strategy):
  """Restores `latest`; a checkpoint of another model (or a damaged one) is an
  IncompatibleWorkdirError that names the config fields that differ from the run that wrote the
  workdir."""
  try:
    with strategy.scope():
      ckpt.restore(latest).assert_existing_objects_matched()
  except (ValueError, AssertionError, tf.errors.OpError) as e:
    try:
      with tf.io.gfile.GFile(os.path.join(workdir, task_lib.CONFIG_FILE)) as f:
        before = _flatten(json.load(f))
      now = _flatten(json.loads(config.to_json_best_effort()))
      diff = [f"{k}: {before.get(k)!r} -> {now.get(k)!r}" for k in sorted(set(before) | set(now))
              if before.get(k) != now.get(k) and k not in _SCHEDULE_FIELDS]
    except (OSError, ValueError, tf.errors.OpError):
      diff = []
    raise errors.IncompatibleWorkdirError(
        f"{workdir} cannot resume from {latest} ({str(e).strip().splitlines()[0][:160]}): a "
        f"different model wrote it (or it is damaged); config fields that differ from that run: "
        f"{'; '.join(diff[:8]) or 'none (or no readable config.json)'}. Use a new --workdir, "
        "or the config that wrote it") from None


def train(task, workdir, strategy):
  """Trains `task` in `workdir`, resuming from its latest checkpoint.

  Args:
    task: a prepared `LiTTask` (concrete paths; pre-computed embeddings named).
    workdir: output directory (checkpoints, config.json, metrics.jsonl, summaries); any
      `tf.io.gfile` path.
    strategy: the tf.distribute strategy.

  Returns:
    the metrics of the last step (a dict of floats).
  """
  config = task.config
  task.validate(strategy.num_replicas_in_sync)
  chief = strategy.extended.should_checkpoint
  setup(config)
  model = build_model(task, strategy)
  with strategy.scope():
    optimizer, image_optimizer = task.build_optimizers()
  step = optimizer.iterations
  ckpt = checkpoint(model, optimizer, image_optimizer)
  manager = _checkpoint_manager(ckpt, workdir, strategy)
  # Every worker resumes from the chief's latest checkpoint (read once, before anything writes),
  # never from its own private copy: a kill can land between the chief's and a worker's write.
  latest = tf.train.latest_checkpoint(os.path.join(workdir, "checkpoints"))
  if latest:
    _restore(ckpt, latest, config, workdir, strategy)
  if chief:  # only now: a config that cannot resume leaves the workdir's config.json as it was
    task_lib.save_config(config, workdir)
  start = int(step.numpy())
  if start:
    logging.info("resumed from %s at step %d", latest, start)
  with strategy.scope():
    model.compile(optimizer, loss=task.build_loss(), image_optimizer=image_optimizer,
                  clip_grad_norm=config.optim.get("clip_grad_norm"),
                  chunk_size=config.get("chunk_size") or None)
  step_lib.build_optimizers(model, optimizer, image_optimizer, strategy)
  unlock = _DelayedUnlock(config, model, start)

  dataset = strategy.distribute_datasets_from_function(lambda ctx: task.build_inputs(ctx, start))
  steps_per_loop = int(config.get("steps_per_loop") or 1)
  trainer = runner.LiTTrainer(model, strategy, dataset, steps_per_loop,
                              jit_compile=config.get("jit_compile", False))
  evals = task.build_evaluators(during_training=True) if config.get("eval_every") else []
  evaluator = runner.LiTEvaluator(model, evals, strategy) if evals else None
  log = runner.StepLog(trainer, step, config.total_steps, config.batch_size, config.log_every,
                       path=os.path.join(workdir, runner.METRICS_FILE) if chief else None,
                       learning_rate=lambda: tf.convert_to_tensor(optimizer.learning_rate))
  summaries = os.path.join(workdir, "train") if chief else None
  train_files = config.precompute.train if config.precompute.enabled else config.data.train
  with runner.Preemption(manager, step) as preemption, pipeline.naming_corruption(
      train_files, config.precompute.dim if config.precompute.enabled else None):
    controller = orbit.Controller(
        global_step=step, trainer=trainer, evaluator=evaluator, strategy=strategy,
        train_actions=[log, preemption], steps_per_loop=steps_per_loop,
        summary_dir=summaries,  # restore and saves are ours (above, and at the boundaries)
        eval_summary_dir=os.path.join(workdir, "eval") if chief else None)
    for boundary in runner.boundaries(start, config.total_steps,
                                      every=(config.checkpoint_every, config.get("eval_every")),
                                      extra=(unlock.at,)):
      controller.train(steps=boundary, checkpoint_at_completion=False)
      if boundary % config.checkpoint_every == 0 or boundary == config.total_steps:
        manager.save(checkpoint_number=boundary)
      unlock.maybe_unlock(boundary, trainer)
      if evaluator and (boundary % config.eval_every == 0 or boundary == config.total_steps):
        controller.evaluate()
  metrics = log.last_records[-1] if start < config.total_steps else {}
  metrics = {k: v for k, v in metrics.items() if k != "step"}
  if chief:
    with tf.io.gfile.GFile(os.path.join(workdir, "train_metrics.json"), "w") as f:
      json.dump({"step": int(step.numpy()), **metrics}, f, indent=2)
  return metrics
