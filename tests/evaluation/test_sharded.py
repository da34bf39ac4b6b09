"""sharded_map: the replicas share a pass over a set, each element computed exactly once, the
result in order on every replica count."""
import numpy as np
import pytest
import tensorflow as tf

from lit_keras.evaluation import sharded


@pytest.mark.parametrize("count", [0, 1, 5, 13, 17])
def test_each_element_once_in_order(mirrored_strategy, count):
  strategy = mirrored_strategy
  with strategy.scope():
    seen = tf.Variable(0.0, synchronization=tf.VariableSynchronization.ON_READ,
                       aggregation=tf.VariableAggregation.SUM)

  def fn(x):  # padding elements are zeros; real ones are 1 … count
    seen.assign_add(tf.reduce_sum(tf.cast(x[:, 0] > 0, tf.float32)))
    return x * 2.0

  elements = lambda: tf.data.Dataset.range(1, count + 1).map(
      lambda i: tf.cast(tf.stack([i, -i]), tf.float32))
  got = sharded.sharded_map(fn, elements, count, 3, strategy=strategy)
  want = np.array([[2.0 * i, -2.0 * i] for i in range(1, count + 1)]).reshape(count, 2)
  np.testing.assert_array_equal(got.reshape(count, 2), want)
  assert float(seen.read_value()) == count  # every element once, on one replica
  one = sharded.sharded_map(lambda x: x * 2.0, elements, count, 3)
  np.testing.assert_array_equal(one.reshape(count, 2), want)


def test_prepare_runs_after_sharding_on_the_host(mirrored_strategy):
  """`prepare` (e.g. decoding) and `prepare_batch` (e.g. tokenizing) happen in the input
  pipeline; only their outputs reach `fn`."""
  texts = [f"t{i}" for i in range(7)]
  got = sharded.sharded_map(
      lambda x: tf.cast(x, tf.float32) + 0.5,
      lambda: tf.data.Dataset.from_tensor_slices(texts), len(texts), 2,
      prepare=lambda s: tf.strings.length(s), prepare_batch=lambda b: b * 10,
      strategy=mirrored_strategy)
  np.testing.assert_array_equal(got, [20.5] * 7)
