"""lit_keras.layers.attention: the towers' attention as batched matmuls, bit for bit."""
import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from lit_keras import towers
from lit_keras.layers import attention
from tests import tiny_models

# Different lengths, so that padding and the attention mask take part.
TEXTS = ["a photo of a cat", "dog", "a red car on a wet road at night", "", "tree tree tree"]


def _blocks(tower):
  if isinstance(tower, towers.BertTextTower):
    return list(tower.encoder.transformer_layers)
  from official.vision.modeling.backbones import vit  # pylint: disable=g-import-not-at-top
  encoder, = [l for l in tower.backbone.layers if isinstance(l, vit.Encoder)]
  return list(encoder._encoder_layers)  # pylint: disable=protected-access


def _tower_and_inputs(kind, vocab_file):
  tf_keras.utils.set_random_seed(3)
  if kind == "text":
    tower = tiny_models.scratch_text_tower(vocab_file, num_layers=2)
    return tower, tower.tokenize(tf.constant(TEXTS))
  tower = tiny_models.scratch_image_tower(num_layers=2)
  size = tiny_models.IMAGE_SIZE
  return tower, tf.random.stateless_uniform([5, size, size, 3], seed=(1, 2))


def _op_types(fn, *args):
  graph_def = fn.get_concrete_function(*args).graph.as_graph_def()
  return [n.op for n in graph_def.node] + [n.op for f in graph_def.library.function
                                           for n in f.node_def]


def _run(tower, inputs):
  """The tower's output and its gradients (one traced forward + backward), and the op types
  of the traced forward."""
  @tf.function
  def step(inputs):
    with tf.GradientTape() as tape:
      out = tower.encode(inputs, training=True)
      loss = tf.reduce_sum(out * tf.linspace(-1.0, 1.0, out.shape[-1]))
    grads = tape.gradient(loss, tower.trainable_variables)
    return out, [tf.convert_to_tensor(g) for g in grads]

  out, grads = step(inputs)
  forward = tf.function(lambda x: tower.encode(x, training=False))
  return out.numpy(), [g.numpy() for g in grads], _op_types(forward, inputs)


@pytest.mark.parametrize("kind", ["text", "image"])
def test_attention_is_the_einsum_attention_bit_for_bit(kind, vocab_file):
  tower, inputs = _tower_and_inputs(kind, vocab_file)
  layers = [b._attention_layer for b in _blocks(tower)]  # pylint: disable=protected-access
  plain_classes = [type(l).__mro__[1] for l in layers]
  assert all(attention._batch_matmul_attention in vars(type(l)).values() for l in layers)  # pylint: disable=protected-access
  fast_out, fast_grads, fast_ops = _run(tower, inputs)

  for layer, cls in zip(layers, plain_classes):  # back to the einsum implementation
    layer.__class__ = cls
  plain_out, plain_grads, plain_ops = _run(tower, inputs)

  # Two einsums per block (scores, context) became two batched matmuls.
  n = len(layers)
  assert n == 2
  assert fast_ops.count("BatchMatMulV2") - plain_ops.count("BatchMatMulV2") == 2 * n
  assert plain_ops.count("Einsum") - fast_ops.count("Einsum") == 2 * n
  np.testing.assert_array_equal(fast_out, plain_out)
  assert len(fast_grads) == len(plain_grads) == len(tower.trainable_variables)
  for fast, plain, v in zip(fast_grads, plain_grads, tower.trainable_variables):
    np.testing.assert_array_equal(fast, plain, err_msg=v.name)
  assert all(np.abs(g).max() > 0 for g in fast_grads[-4:])


def test_config_and_keras_names_are_the_plain_layers_and_other_classes_are_left_alone(
    vocab_file):
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
  assert attention.use_batch_matmul_attention(blocks) == 1
  assert type(blocks[0]._attention_layer) is Custom  # pylint: disable=protected-access,unidiomatic-typecheck
  assert type(blocks[1]._attention_layer).__mro__[1] is tf_keras.layers.MultiHeadAttention  # pylint: disable=protected-access
