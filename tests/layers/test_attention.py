"""lit_keras.layers.attention: the text tower's attention as batched matmuls, bit for bit."""
import numpy as np
import tensorflow as tf
import tf_keras

from lit_keras import towers
from lit_keras.layers import attention
from tests import tiny_models

# Different lengths, so that padding and the attention mask take part.
TEXTS = ["a photo of a cat", "dog", "a red car on a wet road at night", "", "tree tree tree"]


def _op_types(fn, *args):
  graph_def = fn.get_concrete_function(*args).graph.as_graph_def()
  return [n.op for n in graph_def.node] + [n.op for f in graph_def.library.function
                                           for n in f.node_def]


def _run(tower):
  """The tower's pooled output and its gradients (one traced forward + backward), and the op
  types of the traced forward."""
  tokens = tower.tokenize(tf.constant(TEXTS))
  weights = tf.linspace(-1.0, 1.0, tower.hidden_size)

  @tf.function
  def step(tokens):
    with tf.GradientTape() as tape:
      out = tower.encode(tokens, training=True)
      loss = tf.reduce_sum(out * weights)
    grads = tape.gradient(loss, tower.trainable_variables)
    return out, [tf.convert_to_tensor(g) for g in grads]

  out, grads = step(tokens)
  forward = tf.function(lambda t: tower.encode(t, training=False))
  return out.numpy(), [g.numpy() for g in grads], _op_types(forward, tokens)


def test_text_tower_attention_is_the_einsum_attention_bit_for_bit(vocab_file):
  tf_keras.utils.set_random_seed(3)
  tower = tiny_models.scratch_text_tower(vocab_file, num_layers=2)
  layers = [b._attention_layer for b in tower.encoder.transformer_layers]  # pylint: disable=protected-access
  assert {type(l) for l in layers} == {attention._BatchMatmulAttention}  # pylint: disable=protected-access
  fast_out, fast_grads, fast_ops = _run(tower)

  for layer in layers:  # back to tf_keras's own einsum implementation, same weights
    layer.__class__ = tf_keras.layers.MultiHeadAttention
  plain_out, plain_grads, plain_ops = _run(tower)

  # Two einsums per block (scores, context) became two batched matmuls.
  n = len(layers)
  assert fast_ops.count("BatchMatMulV2") - plain_ops.count("BatchMatMulV2") == 2 * n
  assert plain_ops.count("Einsum") - fast_ops.count("Einsum") == 2 * n
  np.testing.assert_array_equal(fast_out, plain_out)
  assert len(fast_grads) == len(plain_grads) == len(tower.trainable_variables)
  for fast, plain, v in zip(fast_grads, plain_grads, tower.trainable_variables):
    np.testing.assert_array_equal(fast, plain, err_msg=v.name)
  assert any(np.abs(g).max() > 0 for g in fast_grads)


def test_longer_sequences_keep_the_einsums(vocab_file):
  tower = tiny_models.scratch_text_tower(vocab_file, seq_length=attention.MAX_LENGTH + 1)
  tokens = tower.tokenize(tf.constant(TEXTS))
  ops = _op_types(tf.function(lambda t: tower.encode(t, training=False)), tokens)
  assert "BatchMatMulV2" not in ops
  # 1 block: query, key, value and output projections, 2 feed-forward layers, 2 attention products
  assert ops.count("Einsum") == 8


def test_switch_leaves_other_attention_classes_and_config_alone(vocab_file):
  tower = tiny_models.scratch_text_tower(vocab_file, num_layers=2)
  config = tower.get_config()
  rebuilt = towers.BertTextTower.from_config(config)
  assert rebuilt.get_config() == config
  layer = rebuilt.encoder.transformer_layers[0]._attention_layer  # pylint: disable=protected-access
  # Keras sees the plain layer: same registered name and config.
  assert tf_keras.saving.get_registered_name(type(layer)) == "MultiHeadAttention"
  assert tf_keras.layers.serialize(layer)["class_name"] == "MultiHeadAttention"

  class Custom(tf_keras.layers.MultiHeadAttention):
    pass

  blocks = rebuilt.encoder.transformer_layers
  for block in blocks:
    block._attention_layer.__class__ = tf_keras.layers.MultiHeadAttention  # pylint: disable=protected-access
  blocks[0]._attention_layer.__class__ = Custom  # pylint: disable=protected-access
  assert attention.use_batch_matmul_attention(blocks) == len(blocks) - 1 >= 1
  assert type(blocks[0]._attention_layer) is Custom  # pylint: disable=protected-access,unidiomatic-typecheck
  assert {type(b._attention_layer) for b in blocks[1:]} == {attention._BatchMatmulAttention}  # pylint: disable=protected-access
