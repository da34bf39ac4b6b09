"""Keras fit() on LiTModel: on 4 logical devices it equals the trainer's step (loss, gradients)
with steps_per_execution > 1; evaluate() gives the in-batch accuracies; Keras callbacks work."""
import glob

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from lit_keras.training import runner
from lit_keras.training import step as step_lib
from tests import tiny_models

GLOBAL_BATCH, STEPS = 8, 4


def _data(vocab_file):
  return [tiny_models.random_batch(GLOBAL_BATCH, vocab_file, seed=30 + i) for i in range(STEPS)]


def _dataset(strategy, batches):
  """Each replica's slice of each global batch, in replica order (tf.distribute's order)."""
  n = strategy.num_replicas_in_sync
  b = GLOBAL_BATCH // n
  slices = [tf.nest.map_structure(lambda x, r=r: x[r * b:(r + 1) * b], batch)
            for batch in batches for r in range(n)]
  stacked = tf.nest.map_structure(lambda *x: np.stack(x), *slices)
  return strategy.distribute_datasets_from_function(
      lambda ctx: tf.data.Dataset.from_tensor_slices(stacked))


def _twins(strategy, image_module, vocab_file, batches):
  """Two identical built models (and SGD(1) optimizers: an update is minus the gradient)."""
  models = []
  for _ in range(2):
    with strategy.scope():
      model = tiny_models.lit_model("Lu", image_module, vocab_file, seed=0)
      optimizer = tf_keras.optimizers.SGD(1.0)
    strategy.run(tf.function(lambda b, m=model: m(b)["zimg"]),
                 args=(next(iter(_dataset(strategy, batches))),))
    models.append((model, optimizer))
  models[1][0].set_weights(models[0][0].get_weights())
  return models


def test_fit_on_four_replicas_equals_the_trainer(mirrored_strategy, image_module, vocab_file):
  """STEPS steps of fit(steps_per_execution=2) and one trainer loop of STEPS steps: the same
  weights (so the same gradient at every step) and the same losses, Keras reporting the true
  loss (the running mean of the global loss, not its sum over the 4 replicas)."""
  strategy, batches = mirrored_strategy, _data(vocab_file)
  (fit_model, fit_opt), (run_model, run_opt) = _twins(strategy, image_module, vocab_file,
                                                      batches)
  with strategy.scope():
    run_model.compile(run_opt, loss="softmax")
  step_lib.build_optimizers(run_model, run_opt, None, strategy)
  trainer = runner.LiTTrainer(run_model, strategy, _dataset(strategy, batches), STEPS)
  trainer.train(tf.constant(STEPS))
  per_step = trainer.history[:, trainer.names.index("loss")]
  assert len(set(np.round(per_step, 5))) == STEPS

  with strategy.scope():
    fit_model.compile(fit_opt, loss="softmax", steps_per_execution=2)
  seen = []
  log = tf_keras.callbacks.LambdaCallback(
      on_train_batch_end=lambda batch, logs: seen.append((batch, logs["loss"])))
  history = fit_model.fit(_dataset(strategy, batches), epochs=1, steps_per_epoch=STEPS,
                          callbacks=[log], verbose=0)

  assert int(fit_opt.iterations.numpy()) == STEPS == int(run_opt.iterations.numpy())
  for a, b in zip(fit_model.trainable_variables, run_model.trainable_variables):
    np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-5, err_msg=a.name)
  assert [b for b, _ in seen] == [1, 3]  # one callback per execution of 2 steps
  np.testing.assert_allclose([l for _, l in seen], [per_step[:2].mean(), per_step.mean()],
                             rtol=1e-5)
  np.testing.assert_allclose(history.history["loss"][-1], per_step.mean(), rtol=1e-5)


def test_a_fit_step_is_the_global_gradient(mirrored_strategy, image_module, vocab_file):
  """One fit() step on 4 replicas with SGD(1): the update is minus the gradient of the
  one-device loss on the concatenated batch (a plain tape, no strategy)."""
  strategy, batches = mirrored_strategy, _data(vocab_file)
  (model, opt), _ = _twins(strategy, image_module, vocab_file, batches)
  start = [v.numpy() for v in model.trainable_variables]
  with strategy.scope():
    model.compile(opt, loss="sigmoid" if model.use_bias else "softmax")
  history = model.fit(_dataset(strategy, batches[:1]), epochs=1, steps_per_epoch=1, verbose=0)
  ref = tiny_models.lit_model("Lu", image_module, vocab_file, seed=0)
  ref(batches[0])
  for v, s in zip(ref.trainable_variables, start):
    v.assign(s)
  with tf.GradientTape() as tape:
    loss, _ = step_lib.compute_loss(ref, batches[0], model.contrastive_loss)
  grads = tape.gradient(loss, ref.trainable_variables)
  np.testing.assert_allclose(history.history["loss"][0], loss.numpy(), rtol=1e-5)
  for g, s, v in zip(grads, start, model.trainable_variables):
    np.testing.assert_allclose(s - v.numpy(), tf.convert_to_tensor(g).numpy(), atol=1e-5,
                               err_msg=v.name)


def test_evaluate_reports_in_batch_accuracies(image_module, vocab_file):
  batches = _data(vocab_file)
  model = tiny_models.lit_model("Lu", image_module, vocab_file, seed=1)
  model(batches[0])
  model.compile(tf_keras.optimizers.SGD(0.1), loss="softmax")
  ds = tf.data.Dataset.from_tensor_slices(
      tf.nest.map_structure(lambda *x: np.stack(x), *batches))
  results = model.evaluate(ds, verbose=0, return_dict=True)
  i2t, t2i = [], []
  for batch in batches:
    out = model(batch, training=False)
    sims = out["zimg"].numpy() @ out["ztxt"].numpy().T
    i2t.append(np.mean(sims.argmax(1) == np.arange(GLOBAL_BATCH)))
    t2i.append(np.mean(sims.argmax(0) == np.arange(GLOBAL_BATCH)))
  assert 0 < np.mean(i2t) < 1  # an untrained model: informative, not trivial
  np.testing.assert_allclose(results["i2t_acc"], np.mean(i2t), rtol=1e-6)
  np.testing.assert_allclose(results["t2i_acc"], np.mean(t2i), rtol=1e-6)
  assert set(results) == {"loss", "i2t_acc", "t2i_acc", "temperature", "img_norm", "txt_norm"}


def test_keras_callbacks(tmp_path, image_module, vocab_file):
  """ModelCheckpoint (weights that reload), TensorBoard (event files), BackupAndRestore (an
  interrupted fit resumes at its backup and ends where an uninterrupted one does)."""
  batches = _data(vocab_file)
  ds = tf.data.Dataset.from_tensor_slices(
      tf.nest.map_structure(lambda *x: np.stack(x), *batches)).repeat()

  def model_and_fit(callbacks, steps=STEPS):
    model = tiny_models.lit_model("Lu", image_module, vocab_file, seed=2)
    model(batches[0])
    model.compile(tf_keras.optimizers.Adam(1e-2), loss="softmax")
    model.fit(ds, epochs=1, steps_per_epoch=steps, callbacks=callbacks, verbose=0)
    return model

  weights = str(tmp_path / "ckpt" / "weights")
  model = model_and_fit([tf_keras.callbacks.ModelCheckpoint(weights, save_weights_only=True),
                         tf_keras.callbacks.TensorBoard(str(tmp_path / "tb"))])
  clone = tiny_models.lit_model("Lu", image_module, vocab_file, seed=3)
  clone(batches[0])
  clone.load_weights(weights).expect_partial()
  np.testing.assert_allclose(clone(batches[1])["ztxt"], model(batches[1])["ztxt"], atol=1e-6)
  assert glob.glob(str(tmp_path / "tb" / "train" / "events.out.tfevents.*"))

  class Interrupt(tf_keras.callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
      if batch == 2:
        raise RuntimeError("interrupted")

  backup = str(tmp_path / "backup")
  with pytest.raises(RuntimeError, match="interrupted"):
    model_and_fit([tf_keras.callbacks.BackupAndRestore(backup, save_freq=1), Interrupt()])
  ran = []
  count = tf_keras.callbacks.LambdaCallback(on_train_batch_end=lambda b, logs: ran.append(b))
  resumed = model_and_fit([tf_keras.callbacks.BackupAndRestore(backup, save_freq=1), count])
  # Steps 0-2 were backed up; the resumed fit ran only step 3, from the restored optimizer.
  assert ran == [3] and int(resumed.optimizer.iterations.numpy()) == STEPS
