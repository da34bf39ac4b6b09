"""The training step: exact on 4 replicas vs one device; locked towers stay locked."""
import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from lit_keras import losses
from lit_keras import training
from tests import tiny_models

GLOBAL_BATCH = 16


def _one_device_reference(model, batch, loss_fn):
  """Loss and gradients on the concatenated global batch, by a plain GradientTape."""
  with tf.GradientTape() as tape:
    loss, _ = training.compute_loss(model, batch, loss_fn)
  grads = tape.gradient(loss, model.trainable_variables)
  assert all(g is not None for g in grads), "every trainable variable must take part in the loss"
  return loss.numpy(), [tf.convert_to_tensor(g).numpy() for g in grads]


def assert_sgd_step_applied(model, before, metrics, ref_loss, ref_grads):
  """After one SGD(lr=1) step: the reported loss is `ref_loss` (the true global loss, not a
  multiple of it), every weight moved by minus its reference gradient, and the reported gradient
  norm is the reference gradients' norm."""
  np.testing.assert_allclose(metrics["loss"].numpy(), ref_loss, rtol=1e-5)
  assert len(ref_grads) == len(before) > 0
  for v, b, g in zip(model.trainable_variables, before, ref_grads):
    np.testing.assert_allclose(b - v.numpy(), g, atol=1e-5, rtol=1e-4, err_msg=v.name)
  ref_norm = np.sqrt(sum(float(np.sum(g.astype(np.float64) ** 2)) for g in ref_grads))
  np.testing.assert_allclose(metrics["grad_norm"].numpy(), ref_norm, rtol=1e-4)


def _shard(strategy, batch):
  n = strategy.num_replicas_in_sync
  b = GLOBAL_BATCH // n
  return strategy.experimental_distribute_values_from_function(
      lambda ctx: tf.nest.map_structure(
          lambda x: tf.constant(x[ctx.replica_id_in_sync_group * b:][:b]), batch))


@pytest.mark.parametrize("setting,loss_name", [
    ("Lu", "softmax"), ("uu", "sigmoid"),
    pytest.param("Lu", "sigmoid", marks=pytest.mark.slow),
    pytest.param("uu", "softmax", marks=pytest.mark.slow)])
def test_four_replicas_equal_one_device(mirrored_strategy, image_module, vocab_file, setting,
                                        loss_name):
  loss_fn = losses.get_loss(loss_name)
  use_bias = loss_name == "sigmoid"
  batch = tiny_models.random_batch(GLOBAL_BATCH, vocab_file, seed=3)

  ref_model = tiny_models.lit_model(setting, image_module, vocab_file, use_bias=use_bias)
  ref_model(batch)
  ref_loss, ref_grads = _one_device_reference(ref_model, batch, loss_fn)

  strategy = mirrored_strategy
  with strategy.scope():
    model = tiny_models.lit_model(setting, image_module, vocab_file, use_bias=use_bias, seed=1)
    # SGD with lr=1: each weight moves by exactly minus its (global) gradient.
    optimizer = tf_keras.optimizers.SGD(learning_rate=1.0)
  dist_batch = _shard(strategy, batch)
  strategy.run(tf.function(lambda b: model(b)["zimg"]), args=(dist_batch,))  # build per replica
  model.set_weights(ref_model.get_weights())
  before = [v.numpy() for v in model.trainable_variables]
  step = training.make_train_step(model, optimizer, loss_fn, strategy)
  metrics = step(dist_batch)

  assert_sgd_step_applied(model, before, metrics, ref_loss, ref_grads)


@pytest.mark.parametrize("setting,jit_compile", [("Lu", None), ("Lu", True), ("uu", True)])
def test_one_device_step_matches_tape(image_module, vocab_file, setting, jit_compile):
  """The default-strategy step applies exactly the plain-tape gradient, with XLA too (the hub
  image tower and the tokenized text inputs compile; `config.jit_compile` in train.py)."""
  batch = tiny_models.random_batch(8, vocab_file, seed=4)
  model = tiny_models.lit_model(setting, image_module, vocab_file)
  model(batch)
  ref_loss, ref_grads = _one_device_reference(model, batch, losses.softmax_contrastive_loss)
  before = [v.numpy() for v in model.trainable_variables]
  step = training.make_train_step(model, tf_keras.optimizers.SGD(1.0),
                                  losses.softmax_contrastive_loss, jit_compile=jit_compile)
  metrics = step(batch)
  tol = {"rtol": 1e-6} if jit_compile is None else {"rtol": 1e-5, "atol": 1e-6}
  np.testing.assert_allclose(metrics["loss"].numpy(), ref_loss, **tol)
  # A weight moves by ~1e-3..1e-2; float32 sums of the word-embedding gradient rows (one term
  # per token occurrence) come out in a different order in the step than in the eager tape,
  # measured up to 1.6e-6 apart on a loaded machine.
  for v, b, g in zip(model.trainable_variables, before, ref_grads):
    np.testing.assert_allclose(b - v.numpy(), g, atol=1e-5,
                               rtol=1e-5 if jit_compile is None else 1e-4, err_msg=v.name)


def test_clipping_bounds_the_update(image_module, vocab_file):
  batch = tiny_models.random_batch(8, vocab_file, seed=5)
  model = tiny_models.lit_model("Lu", image_module, vocab_file)
  model(batch)
  before = [v.numpy() for v in model.trainable_variables]
  step = training.make_train_step(model, tf_keras.optimizers.SGD(1.0),
                                  losses.softmax_contrastive_loss, clip_grad_norm=1e-3)
  metrics = step(batch)
  assert metrics["grad_norm"].numpy() > 1e-3  # the pre-clipping norm is reported
  update = np.sqrt(sum(np.sum((b - v.numpy()) ** 2)
                       for v, b in zip(model.trainable_variables, before)))
  np.testing.assert_allclose(update, 1e-3, rtol=1e-3)
