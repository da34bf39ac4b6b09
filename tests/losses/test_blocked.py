"""Blocked losses (no [b, B] logits) against NumPy references: values, accuracies and gradients,
on one device and over 4 replicas."""
import numpy as np
import pytest
import tensorflow as tf

from lit_keras import losses
from lit_keras.losses import blocked
from tests.losses.test_contrastive import _normed, np_sigmoid_loss, np_softmax_loss


def _softmax_rows(x):
  x = x - x.max(axis=1, keepdims=True)
  e = np.exp(x)
  return e / e.sum(axis=1, keepdims=True)


def np_softmax_grads(q, k, s):
  """∂loss/∂(q, k, s) of ½(CE i→t + CE t→i), derived by hand (float64)."""
  q, k = q.astype(np.float64), k.astype(np.float64)
  n = len(q)
  logits = q @ k.T * s
  dlogits = 0.5 / n * ((_softmax_rows(logits) - np.eye(n)) + (_softmax_rows(logits.T) - np.eye(n)).T)
  return s * dlogits @ k, s * dlogits.T @ q, (dlogits * (q @ k.T)).sum()


def np_sigmoid_grads(q, k, s, bias):
  q, k = q.astype(np.float64), k.astype(np.float64)
  n = len(q)
  logits = q @ k.T * s + bias
  y = 2 * np.eye(n) - 1
  dlogits = -y / (1 + np.exp(y * logits)) / n  # ∂/∂x of −log σ(y x) / n
  return s * dlogits @ k, s * dlogits.T @ q, (dlogits * (q @ k.T)).sum(), dlogits.sum()


def _loss_and_grads(name, zimg, ztxt, scale, bias, block_size):
  zimg, ztxt = tf.constant(zimg), tf.constant(ztxt)
  s, b = tf.constant(scale), tf.constant(bias)
  with tf.GradientTape() as tape:
    tape.watch([zimg, ztxt, s, b])
    loss, metrics = losses.get_loss(name, block_size)(zimg, ztxt, s, b)
  return loss, metrics, tape.gradient(loss, [zimg, ztxt, s, b])


# Batches and blocks: one block, blocks that divide the batch, a last partial block, block 1.
CASES = [(8, 8), (8, 64), (16, 4), (13, 5), (7, 1), (1, 3)]


@pytest.mark.parametrize("batch,block", CASES)
def test_blocked_softmax_equals_numpy(batch, block):
  rng = np.random.default_rng(batch * 100 + block)
  zimg, ztxt = _normed(rng, batch, 12), _normed(rng, batch, 12)
  loss, metrics, (dq, dk, ds, db) = _loss_and_grads("softmax", zimg, ztxt, 10.0, -2.0, block)
  ref, acc_i2t, acc_t2i = np_softmax_loss(zimg, ztxt, 10.0)
  np.testing.assert_allclose(loss.numpy(), ref, rtol=1e-5, atol=1e-6)
  assert metrics["i2t_acc"].numpy() == np.float32(acc_i2t)
  assert metrics["t2i_acc"].numpy() == np.float32(acc_t2i)
  rq, rk, rs = np_softmax_grads(zimg, ztxt, 10.0)
  np.testing.assert_allclose(dq.numpy(), rq, atol=1e-6)
  np.testing.assert_allclose(dk.numpy(), rk, atol=1e-6)
  np.testing.assert_allclose(ds.numpy(), rs, rtol=1e-5, atol=1e-7)
  assert db is None  # the softmax is invariant to a constant bias


@pytest.mark.parametrize("batch,block", CASES)
def test_blocked_sigmoid_equals_numpy(batch, block):
  rng = np.random.default_rng(batch * 100 + block + 1)
  zimg, ztxt = _normed(rng, batch, 12), _normed(rng, batch, 12)
  loss, metrics, (dq, dk, ds, db) = _loss_and_grads("sigmoid", zimg, ztxt, 10.0, -2.0, block)
  np.testing.assert_allclose(loss.numpy(), np_sigmoid_loss(zimg, ztxt, 10.0, -2.0), rtol=1e-5)
  _, acc_i2t, acc_t2i = np_softmax_loss(zimg, ztxt, 10.0)  # argmax: the same logits' order
  assert metrics["i2t_acc"].numpy() == np.float32(acc_i2t)
  assert metrics["t2i_acc"].numpy() == np.float32(acc_t2i)
  rq, rk, rs, rb = np_sigmoid_grads(zimg, ztxt, 10.0, -2.0)
  np.testing.assert_allclose(dq.numpy(), rq, atol=1e-6)
  np.testing.assert_allclose(dk.numpy(), rk, atol=1e-6)
  np.testing.assert_allclose(ds.numpy(), rs, rtol=1e-5, atol=1e-7)
  np.testing.assert_allclose(db.numpy(), rb, rtol=1e-5)


def test_row_logsumexp_is_stable_and_ties_pick_the_first_column():
  q = tf.constant([[1.0, 0.0], [0.0, 1.0]])
  k = tf.constant([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])  # row 0 ties at columns 0 and 1
  lse, idx = blocked.row_logsumexp(q, k, 500.0, 0.0, block_size=1)  # exp(500) overflows float32
  np.testing.assert_allclose(lse.numpy(), [500 + np.log(2), 500.0], rtol=1e-6)
  assert idx.numpy().tolist() == [0, 2]


def _ops(graph, seen=None):
  """Every op of `graph` and of the functions it calls (while-loop bodies, calls), recursively."""
  seen = set() if seen is None else seen
  for op in graph.get_operations():
    yield op
    for attr in ("body", "cond", "f", "then_branch", "else_branch"):
      try:
        name = op.get_attr(attr).name
      except (ValueError, AttributeError):
        continue
      fn = graph._get_function(name)  # pylint: disable=protected-access
      if name not in seen and fn is not None:
        seen.add(name)
        yield from _ops(fn.graph, seen)


def test_blocked_loss_under_a_graph_has_no_b_by_b_tensor():
  """The traced forward and backward hold no tensor with the [b, B] logits' size."""
  b, block = 64, 8
  zimg = tf.TensorSpec([b, 16], tf.float32)

  @tf.function
  def step(zi, zt):
    s = tf.constant(10.0)
    with tf.GradientTape() as tape:
      tape.watch([zi, zt])
      loss, _ = losses.softmax_contrastive_loss(zi, zt, s, block_size=block)
    return tape.gradient(loss, [zi, zt])

  shapes = [o.shape.as_list() for op in _ops(step.get_concrete_function(zimg, zimg).graph)
            for o in op.outputs if o.shape.rank is not None]
  assert any(s == [b, block] for s in shapes)  # the block logits are there ...
  assert not any(s == [b, b] for s in shapes)  # ... the full logits are not


def test_block_size_is_validated():
  for bad in (0, -4, True):
    with pytest.raises(ValueError, match="block_size"):
      losses.get_loss("softmax", bad)


@pytest.mark.parametrize("name", ["softmax", "sigmoid"])
def test_blocked_over_four_replicas_equals_one_device(mirrored_strategy, name):
  """Each replica's rows against the gathered columns, in blocks of 3 (not dividing 16): the
  replicas' summed gradients are the one-device NumPy gradients of the global loss."""
  rng = np.random.default_rng(11)
  zimg, ztxt = _normed(rng, 16, 8), _normed(rng, 16, 8)
  n = mirrored_strategy.num_replicas_in_sync
  b = 16 // n
  shard = lambda x: mirrored_strategy.experimental_distribute_values_from_function(
      lambda ctx: tf.constant(x[ctx.replica_id_in_sync_group * b:][:b]))
  loss_fn = losses.get_loss(name, block_size=3)

  @tf.function
  def run(zi, zt):
    def replica(zi, zt):
      s, bias = tf.constant(10.0), tf.constant(-3.0)
      with tf.GradientTape() as tape:
        tape.watch([zi, zt, s])
        loss, _ = loss_fn(zi, zt, s, bias)
        scaled = loss / n
      dzi, dzt, ds = tape.gradient(scaled, [zi, zt, s])
      ctx = tf.distribute.get_replica_context()
      return loss, dzi, dzt, ctx.all_reduce("sum", ds)
    return mirrored_strategy.run(replica, args=(zi, zt))

  out = [mirrored_strategy.experimental_local_results(x) for x in run(shard(zimg), shard(ztxt))]
  loss = np.mean([x.numpy() for x in out[0]])
  dq = np.concatenate([x.numpy() for x in out[1]])
  dk = np.concatenate([x.numpy() for x in out[2]])
  if name == "softmax":
    ref = np_softmax_loss(zimg, ztxt, 10.0)[0]
    rq, rk, rs = np_softmax_grads(zimg, ztxt, 10.0)
  else:
    ref = np_sigmoid_loss(zimg, ztxt, 10.0, -3.0)
    rq, rk, rs, _ = np_sigmoid_grads(zimg, ztxt, 10.0, -3.0)
  np.testing.assert_allclose(loss, ref, rtol=1e-5)
  np.testing.assert_allclose(dq, rq, atol=1e-6)
  np.testing.assert_allclose(dk, rk, atol=1e-6)
  np.testing.assert_allclose(out[3][0].numpy(), rs, rtol=1e-5)
