"""Locked towers: no trainable weights, frozen BatchNorm, bit-identical weights, no backward pass."""
import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from lit_keras import losses
from lit_keras import towers
from lit_keras import training
from tests import tiny_models


def test_parse_setting():
  assert towers.parse_setting("Lu") == ("L", "u")
  for bad in ["LL ", "Lx", "l", "", None, "LUu"]:
    with pytest.raises(ValueError, match="setting"):
      towers.parse_setting(bad)


def test_locked_hub_image_tower_has_no_trainable_weights(image_module):
  locked = towers.HubImageTower(image_module, state="L", image_size=16)
  unlocked = towers.HubImageTower(image_module, state="U", image_size=16)
  x = tf.random.uniform([2, 16, 16, 3])
  locked(x), unlocked(x)
  assert locked.trainable_weights == [] and locked.weights
  assert unlocked.trainable_weights
  # Locked always runs BatchNorm in inference mode, whatever `training` says.
  np.testing.assert_array_equal(locked(x, training=True).numpy(), locked(x, training=False).numpy())
  assert not np.allclose(unlocked(x, training=True).numpy(), unlocked(x, training=False).numpy())


def test_hub_towers_reject_scratch_state(image_module, bert_pair):
  with pytest.raises(ValueError, match="Invalid state"):
    towers.HubImageTower(image_module, state="u")
  with pytest.raises(ValueError, match="Invalid state"):
    towers.HubBertTextTower(*bert_pair, state="u")
  with pytest.raises(ValueError, match="Invalid state"):
    towers.ViTImageTower(image_size=16, patch_size=4, hidden_size=8, num_layers=1, num_heads=2,
                         mlp_dim=8, state="L")


def test_state_wins_over_stored_trainable_flag(image_module):
  tower = towers.HubImageTower(image_module, state="L", trainable=True)
  assert not tower.trainable and tower.locked


@pytest.mark.parametrize("setting", ["LL", "Lu"])
def test_locked_weights_bit_identical_after_steps(image_module, vocab_file, bert_pair, setting):
  model = tiny_models.lit_model(setting, image_module, vocab_file, bert_pair=bert_pair)
  batch = tiny_models.random_batch(8, vocab_file, seed=1, tokenize=False)
  model(batch)
  locked = [t for t in (model.image_tower, model.text_tower) if t.locked]
  assert all(t.trainable_weights == [] for t in locked)
  before = [[v.numpy().copy() for v in t.weights] for t in locked]
  heads_before = [v.numpy().copy() for v in model.image_head.weights]
  step = training.make_train_step(model, tf_keras.optimizers.Adam(1e-2),
                                  losses.softmax_contrastive_loss)
  for _ in range(5):
    step(batch)
  for tower, vals in zip(locked, before):
    assert len(vals) == len(tower.weights) > 0
    for v, b in zip(tower.weights, vals):  # includes BatchNorm moving statistics
      np.testing.assert_array_equal(v.numpy(), b, err_msg=v.name)
  assert any(not np.array_equal(v.numpy(), b) for v, b in zip(model.image_head.weights,
                                                               heads_before))


def _backward_ops(model, batch, chunk_size=None):
  """The ops of the traced training step that belong to the image tower's backward pass.

  Ops of a Keras tower differentiated by the tape are named `gradient_tape/.../image_tower/...`;
  a hub SavedModel's function is differentiated as a call of a `__backward_*` function (and its
  forward call switches to a `__forward_*` function that keeps the activations).
  """
  step = training.make_train_step(model, tf_keras.optimizers.SGD(0.1),
                                  losses.softmax_contrastive_loss, chunk_size=chunk_size)
  graph_def = step.get_concrete_function(batch).graph.as_graph_def()
  # The replica step is a function called by the step, so its ops live in the graph's function
  # library: walk the top-level graph and every function it (transitively) holds.
  nodes = list(graph_def.node)
  for fn in graph_def.library.function:
    nodes.extend(fn.node_def)
  found = []
  for node in nodes:
    if node.name.startswith("gradient_tape/") and "image_tower/" in node.name:
      found.append(node.name)
    if node.op in ("PartitionedCall", "StatefulPartitionedCall"):
      fn = node.attr["f"].func.name
      if "__backward" in fn or ("image_tower/" in node.name and fn.startswith("__forward")):
        found.append(f"{node.name}: {fn}")
  return found


def test_locked_image_backward_is_not_built(image_module, vocab_file):
  """Lu: the image tower's backward pass is absent from the step; Uu: present."""
  batch = tf.nest.map_structure(tf.constant, tiny_models.random_batch(4, vocab_file, seed=2))
  found = {}
  for setting in ("Lu", "Uu"):
    model = tiny_models.lit_model(setting, image_module, vocab_file)
    model(batch)
    found[setting] = _backward_ops(model, batch)
  assert found["Lu"] == [], found["Lu"]
  assert len(found["Uu"]) >= 2, found["Uu"]  # a forward-with-activations and a backward call


def test_scratch_image_tower_backward_is_built(image_module, vocab_file):
  batch = tf.nest.map_structure(tf.constant, tiny_models.random_batch(4, vocab_file, seed=2))
  model = tiny_models.lit_model("uu", image_module, vocab_file)
  model(batch)
  assert any(n.startswith("gradient_tape/") for n in _backward_ops(model, batch))
