"""Recomputed transformer blocks: the same gradients as the plain towers (one device, 4 replicas,
chunked, XLA), the forward pass really run again in backprop, the export serving the plain
embeddings, and the option validated."""
import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from lit_keras import losses
from lit_keras import towers
from lit_keras import training
from lit_keras.training import task as task_lib
from tests import tiny_models
from tests.training.test_step import _one_device_reference as _reference
from tests.training.test_step import GLOBAL_BATCH
from tests.training.test_step import _shard
from tests.training.test_step import assert_sgd_step_applied

LAYERS = 2


# (replicas, loss, chunk size, XLA)
@pytest.mark.parametrize("replicas,loss_name,chunk,jit", [
    (1, "softmax", None, False), (4, "sigmoid", None, False), (1, "softmax", 5, False),
    (1, "sigmoid", None, True),
    pytest.param(4, "softmax", 3, False, marks=pytest.mark.slow)])  # 4 replicas × chunks: long
def test_recomputed_step_equals_the_plain_gradient(mirrored_strategy, image_module, vocab_file,
                                                   replicas, loss_name, chunk, jit):
  """uu with both towers recomputing every block: one SGD step moves every weight by minus the
  plain towers' whole-batch gradient (a plain tape on one device)."""
  use_bias = loss_name == "sigmoid"
  batch = tiny_models.random_batch(GLOBAL_BATCH, vocab_file, seed=3)
  ref_model = tiny_models.lit_model("uu", image_module, vocab_file, use_bias=use_bias,
                                    num_layers=LAYERS)
  ref_model(batch)
  ref_loss, ref_grads = _reference(ref_model, batch, losses.get_loss(loss_name))

  strategy = mirrored_strategy if replicas == 4 else tf.distribute.get_strategy()
  with strategy.scope():
    model = tiny_models.lit_model("uu", image_module, vocab_file, use_bias=use_bias, seed=1,
                                  num_layers=LAYERS, recompute=True)
    optimizer = tf_keras.optimizers.SGD(learning_rate=1.0)
  dist_batch = _shard(strategy, batch) if replicas == 4 else batch
  strategy.run(tf.function(lambda b: model(b)["zimg"]), args=(dist_batch,))
  model.set_weights(ref_model.get_weights())
  before = [v.numpy() for v in model.trainable_variables]
  step = training.make_train_step(model, optimizer, losses.get_loss(loss_name), strategy,
                                  chunk_size=chunk, jit_compile=jit)
  metrics = step(dist_batch)

  assert_sgd_step_applied(model, before, metrics, ref_loss, ref_grads)


def _softmax_ops(tower, inputs):
  """Attention softmax ops in the traced gradient of `tower` (one per block per forward pass;
  the softmax's own gradient uses no Softmax op), the function library included."""
  tower(inputs)  # built outside the traced function, so the tape watches its weights

  @tf.function
  def grads(x):
    with tf.GradientTape() as tape:
      y = tower(x, training=True)
      loss = tf.reduce_sum(tf.sin(y))
    g = tape.gradient(loss, tower.trainable_variables)
    assert all(x is not None for x in g)
    return g

  graph_def = grads.get_concrete_function(inputs).graph.as_graph_def()
  nodes = list(graph_def.node) + [n for f in graph_def.library.function for n in f.node_def]
  return sum(n.op == "Softmax" for n in nodes)


@pytest.mark.parametrize("kind", ["text", "image"])
def test_backprop_runs_each_block_forward_again(vocab_file, kind):
  """The plain tower's gradient graph runs each block's attention once; the recomputing tower's
  twice (the forward pass, then again inside the backward pass)."""
  if kind == "text":
    build = lambda r: tiny_models.scratch_text_tower(vocab_file, num_layers=LAYERS, recompute=r)
    inputs = tiny_models.random_batch(4, vocab_file)["text"]
  else:
    build = lambda r: tiny_models.scratch_image_tower(num_layers=LAYERS, recompute=r)
    inputs = tiny_models.random_batch(4, vocab_file)["image"]
  inputs = tf.nest.map_structure(tf.constant, inputs)
  assert _softmax_ops(build(False), inputs) == LAYERS
  assert _softmax_ops(build(True), inputs) == 2 * LAYERS


def test_recompute_is_serialized_and_validated(vocab_file):
  tower = tiny_models.scratch_text_tower(vocab_file, recompute=True)
  assert tower.get_config()["recompute"] is True
  assert tiny_models.scratch_image_tower(recompute=True).get_config()["recompute"] is True
  tok = towers.WordPieceTokenizer(vocab_file, seq_length=16)
  with pytest.raises(ValueError, match="recompute=True needs dropout_rate=0"):
    towers.BertTextTower(tok, hidden_size=16, num_layers=1, num_heads=2, inner_dim=32,
                         dropout_rate=0.1, recompute=True)
  with pytest.raises(ValueError, match="recompute=True needs dropout_rate=0"):
    towers.ViTImageTower(image_size=16, patch_size=4, hidden_size=16, num_layers=1, num_heads=2,
                         mlp_dim=32, dropout_rate=0.1, recompute=True)


def test_config_recompute_reaches_the_scratch_towers_and_is_refused_without_one(tmp_path):
  from tests import runs  # pylint: disable=g-import-not-at-top
  c = runs.config(str(tmp_path), recompute=True)  # digits: Lu, a BERT text tower from scratch
  task = runs.prepare(c)
  assert task.build_text_tower().recompute is True
  c = runs.config(str(tmp_path), recompute=True, setting="LL")
  with pytest.raises(ValueError, match="config.recompute applies to towers trained from scratch"):
    task_lib.LiTTask(c).validate()


def test_a_recomputing_model_exports_and_serves_the_plain_embeddings(tmp_path, vocab_file):
  """The serving SavedModel of a recomputing uu model embeds images and texts exactly as the
  same weights without recomputation do."""
  from lit_keras.export import serving  # pylint: disable=g-import-not-at-top
  batch = tiny_models.random_batch(4, vocab_file, seed=5)
  texts = tiny_models.random_batch(4, vocab_file, seed=5, tokenize=False)["text"]
  plain = tiny_models.lit_model("uu", None, vocab_file, num_layers=LAYERS)
  model = tiny_models.lit_model("uu", None, vocab_file, num_layers=LAYERS, recompute=True, seed=1)
  plain(batch), model(batch)
  model.set_weights(plain.get_weights())
  serving.export(model, str(tmp_path), image_size=tiny_models.IMAGE_SIZE)
  loaded = tf.saved_model.load(str(tmp_path))
  got_text = loaded.signatures["embed_text"](texts=tf.constant(texts))["embeddings"]
  got_image = loaded.signatures["embed_image_float"](
      images=tf.constant(batch["image"]))["embeddings"]
  np.testing.assert_allclose(got_text, plain.encode_text(tf.constant(texts)), atol=1e-6)
  np.testing.assert_allclose(got_image, plain.encode_image(tf.constant(batch["image"])),
                             atol=1e-6)
