"""Training a LiT task with Keras `fit()` instead of the Orbit runner (`train.py --engine=fit`).

The same model, optimizers, input pipeline and step (`LiTModel.train_step_values`); Keras runs
`steps_per_loop` steps per execution (`steps_per_execution`), `BackupAndRestore` makes it
resumable, `TensorBoard` logs it. Keras replays an interrupted epoch's data from its start; to
resume exactly, the input pipeline here is built at the step the backup holds
(`backed_up_step`), as the runner does with its checkpoint; `BackupAndRestore` here fixes
tf_keras' off-by-one resume with `steps_per_execution` > 1. At the end the trained parts are
saved in the runner's checkpoint format, so `evaluate.py` and the export read either run.
"""
import os

import tensorflow as tf
import tf_keras

from lit_keras.training import step as step_lib
from lit_keras.training import task as task_lib
from lit_keras.training import trainer


class BackupAndRestore(tf_keras.callbacks.BackupAndRestore):
  """tf_keras' `BackupAndRestore`, resuming at the right step with `steps_per_execution` > 1.

  tf_keras records the *first* step of the last execution as the last one done (it stores the
  batch index `on_train_batch_begin` receives), so a resumed `fit()` would redo a step; this
  records the last step of the execution (the index `on_train_batch_end` receives).
  """

  def on_train_batch_end(self, batch, logs=None):
    if getattr(self, "_training_state", None) is not None:
      self._training_state._ckpt_saved_batch.assign(batch)  # pylint: disable=protected-access
    super().on_train_batch_end(batch, logs)


def backed_up_step(backup_dir):
  """The optimizer step that `BackupAndRestore(backup_dir)` will restore (0 if no backup)."""
  path = tf.train.latest_checkpoint(os.path.join(backup_dir, "chief"))
  if path is None:
    return 0
  reader = tf.train.load_checkpoint(path)
  keys = [k for k in reader.get_variable_to_shape_map()
          if k.startswith("model/optimizer/_iterations/") and k.endswith("VARIABLE_VALUE")]
  if len(keys) != 1:
    raise ValueError(f"{path}: cannot tell the optimizer step among {sorted(keys)}")
  return int(reader.get_tensor(keys[0]))


def fit(task, workdir, strategy):
  """Trains `task` with `model.fit()` in `workdir`; returns the Keras `History`."""
  config = task.config
  task.validate(strategy.num_replicas_in_sync)
  if config.image.get("unlock_at_step") and config.setting[0] != "L":
    raise ValueError("image.unlock_at_step needs the runner (train.py --engine=orbit)")
  chief = strategy.extended.should_checkpoint
  if chief:
    task_lib.save_config(config, workdir)
  trainer.setup(config)
  model = trainer.build_model(task, strategy)
  with strategy.scope():
    optimizer, image_optimizer = task.build_optimizers()
  backup_dir = os.path.join(workdir, "backup")
  start = backed_up_step(backup_dir)
  dataset = strategy.distribute_datasets_from_function(lambda ctx: task.build_inputs(ctx, start))
  per_execution = int(config.get("steps_per_loop") or 1)
  with strategy.scope():
    model.compile(optimizer, loss=task.build_loss(), image_optimizer=image_optimizer,
                  clip_grad_norm=config.optim.get("clip_grad_norm"),
                  chunk_size=config.get("chunk_size") or None,
                  steps_per_execution=per_execution,
                  jit_compile=bool(config.get("jit_compile", False)))
  step_lib.build_optimizers(model, optimizer, image_optimizer, strategy)
  callbacks = [
      # Its counter is in executions (of `per_execution` steps each).
      BackupAndRestore(backup_dir, save_freq=max(config.checkpoint_every // per_execution, 1),
                       delete_checkpoint=False),
      tf_keras.callbacks.TensorBoard(os.path.join(workdir, "fit"),
                                     update_freq=max(config.log_every // per_execution, 1)),
  ]
  history = model.fit(dataset, epochs=1, steps_per_epoch=config.total_steps,
                      callbacks=callbacks, verbose=2)
  manager = tf.train.CheckpointManager(trainer.checkpoint(model, optimizer, image_optimizer),
                                       os.path.join(workdir, "checkpoints"), max_to_keep=3)
  if chief:
    manager.save(checkpoint_number=int(optimizer.iterations.numpy()))
  return history
