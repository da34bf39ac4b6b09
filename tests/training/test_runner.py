"""The Orbit trainer: k steps in one loop call equal k single steps, on one device and on 4
replicas, with every step's values kept."""
import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from lit_keras import losses
from lit_keras import training
from lit_keras.training import runner
from lit_keras.training import step as step_lib
from tests import tiny_models

GLOBAL_BATCH, STEPS = 8, 4


def _batches():
  return [tiny_models.random_batch(GLOBAL_BATCH, tiny_models.write_vocab("/tmp/runner_vocab.txt"),
                                   seed=10 + i) for i in range(STEPS)]


def _per_replica_dataset(batches, replicas):
  """A pipeline's dataset: per step, each replica's slice in replica order."""
  b = GLOBAL_BATCH // replicas
  slices = [tf.nest.map_structure(lambda x, r=r: x[r * b:(r + 1) * b], batch)
            for batch in batches for r in range(replicas)]
  return tf.data.Dataset.from_tensor_slices(
      tf.nest.map_structure(lambda *x: np.stack(x), *slices))


def _model(strategy, image_module, vocab_file, seed):
  with strategy.scope():
    model = tiny_models.lit_model("Lu", image_module, vocab_file, seed=seed)
    optimizer = tf_keras.optimizers.Adam(1e-2)
  return model, optimizer


# 4 replicas: slow; the resume tests run multi-step loops on 2 × 2 replicas by default.
@pytest.mark.parametrize("replicas", [1, pytest.param(4, marks=pytest.mark.slow)])
def test_one_loop_of_k_steps_equals_k_single_steps(mirrored_strategy, image_module, vocab_file,
                                                   replicas):
  strategy = mirrored_strategy if replicas == 4 else tf.distribute.get_strategy()
  batches = _batches()
  dist = lambda: strategy.distribute_datasets_from_function(
      lambda ctx: _per_replica_dataset(batches, replicas))

  ref, ref_opt = _model(strategy, image_module, vocab_file, seed=0)
  model, opt = _model(strategy, image_module, vocab_file, seed=5)
  for m in (ref, model):
    strategy.run(tf.function(lambda b, m=m: m(b)["zimg"]), args=(next(iter(dist())),))
  model.set_weights(ref.get_weights())  # the same start

  # Reference: STEPS calls of the single-step function.
  single = step_lib.make_train_step(ref, ref_opt, losses.softmax_contrastive_loss, strategy)
  it = iter(dist())
  ref_losses = [float(single(next(it))["loss"]) for _ in range(STEPS)]

  # One Orbit loop call of STEPS steps.
  with strategy.scope():
    model.compile(opt, loss="softmax")
  step_lib.build_optimizers(model, opt, None, strategy)
  trainer = runner.LiTTrainer(model, strategy, dist(), max_steps_per_loop=STEPS)
  trainer.train(tf.constant(STEPS))

  assert int(opt.iterations.numpy()) == STEPS
  history = dict(zip(trainer.names, trainer.history.T))
  np.testing.assert_allclose(history["loss"], ref_losses, rtol=1e-5)
  assert len(set(np.round(ref_losses, 5))) == STEPS  # the steps saw different batches
  assert len(model.trainable_variables) == len(ref.trainable_variables) > 0
  # Float32 reassociation inside the loop differs by ~1e-6 across CPUs; one Adam step moves a
  # weight by ~1e-2, so a skipped, repeated or reordered step is far outside this bound.
  for a, b in zip(model.trainable_variables, ref.trainable_variables):
    np.testing.assert_allclose(a.numpy(), b.numpy(), atol=2e-5, err_msg=a.name)


def test_boundaries_fall_on_every_multiple():
  assert runner.boundaries(0, 10, every=(4, 0), extra=(3,)) == [3, 4, 8, 10]
  assert runner.boundaries(8, 10, every=(4,)) == [10]
  assert runner.boundaries(5, 12, every=(5, 3)) == [6, 9, 10, 12]
  assert training.make_train_step is step_lib.make_train_step
