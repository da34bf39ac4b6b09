"""Losses against an independent NumPy reference, on one device and over 4 replicas."""
import numpy as np
import pytest
import tensorflow as tf

from lit_keras import losses


def _normed(rng, b, d):
  x = rng.normal(size=(b, d))
  return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _log_softmax(x):
  x = x - x.max(axis=1, keepdims=True)
  return x - np.log(np.exp(x).sum(axis=1, keepdims=True))


def np_softmax_loss(zimg, ztxt, scale):
  logits = zimg.astype(np.float64) @ ztxt.T.astype(np.float64) * scale
  i2t = -np.diag(_log_softmax(logits)).mean()
  t2i = -np.diag(_log_softmax(logits.T)).mean()
  n = len(zimg)
  acc_i2t = (logits.argmax(1) == np.arange(n)).mean()
  acc_t2i = (logits.T.argmax(1) == np.arange(n)).mean()
  return 0.5 * (i2t + t2i), acc_i2t, acc_t2i


def np_sigmoid_loss(zimg, ztxt, scale, bias):
  logits = zimg.astype(np.float64) @ ztxt.T.astype(np.float64) * scale + bias
  y = 2 * np.eye(len(zimg)) - 1
  # -log sigmoid(x) = log(1 + exp(-x)), computed stably.
  return np.logaddexp(0, -y * logits).sum() / len(zimg)


@pytest.mark.parametrize("batch", [1, 3, 8, 16])
@pytest.mark.parametrize("scale", [1.0, 10.0, 37.5])
def test_softmax_matches_numpy(batch, scale):
  rng = np.random.default_rng(batch)
  zimg, ztxt = _normed(rng, batch, 12), _normed(rng, batch, 12)
  loss, metrics = losses.softmax_contrastive_loss(zimg, ztxt, tf.constant(scale))
  ref, acc_i2t, acc_t2i = np_softmax_loss(zimg, ztxt, scale)
  np.testing.assert_allclose(loss.numpy(), ref, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(metrics["i2t_acc"].numpy(), acc_i2t)
  np.testing.assert_allclose(metrics["t2i_acc"].numpy(), acc_t2i)
  np.testing.assert_allclose(metrics["temperature"].numpy(), scale)


def test_softmax_perfect_alignment_is_near_zero():
  z = np.eye(8, dtype=np.float32)
  loss, metrics = losses.softmax_contrastive_loss(z, z, tf.constant(100.0))
  assert loss.numpy() < 1e-6
  assert metrics["i2t_acc"].numpy() == 1.0


@pytest.mark.parametrize("batch", [1, 3, 8, 16])
@pytest.mark.parametrize("scale,bias", [(1.0, 0.0), (10.0, -10.0), (37.5, 2.5)])
def test_sigmoid_matches_numpy(batch, scale, bias):
  rng = np.random.default_rng(100 + batch)
  zimg, ztxt = _normed(rng, batch, 12), _normed(rng, batch, 12)
  loss, _ = losses.sigmoid_contrastive_loss(zimg, ztxt, tf.constant(scale), tf.constant(bias))
  np.testing.assert_allclose(loss.numpy(), np_sigmoid_loss(zimg, ztxt, scale, bias),
                             rtol=1e-5, atol=1e-5)


def test_sigmoid_requires_bias():
  z = np.eye(2, dtype=np.float32)
  with pytest.raises(ValueError, match="bias"):
    losses.sigmoid_contrastive_loss(z, z, tf.constant(1.0), None)


def test_get_loss_unknown():
  with pytest.raises(ValueError, match="softmax"):
    losses.get_loss("triplet")


def _per_replica_losses(strategy, loss_fn, zimg, ztxt, **kwargs):
  n = strategy.num_replicas_in_sync
  b = len(zimg) // n
  shard = lambda x: strategy.experimental_distribute_values_from_function(
      lambda ctx: tf.constant(x[ctx.replica_id_in_sync_group * b:][:b]))
  dz_img, dz_txt = shard(zimg), shard(ztxt)

  @tf.function
  def run():
    per_replica = strategy.run(lambda a, c: loss_fn(a, c, **kwargs)[0], args=(dz_img, dz_txt))
    return strategy.experimental_local_results(per_replica)

  return np.array([x.numpy() for x in run()])


@pytest.mark.parametrize("name", ["softmax", "sigmoid"])
def test_global_loss_over_replicas_equals_one_device(mirrored_strategy, name):
  rng = np.random.default_rng(7)
  zimg, ztxt = _normed(rng, 16, 8), _normed(rng, 16, 8)
  kwargs = dict(logit_scale=tf.constant(10.0), logit_bias=tf.constant(-3.0))
  local = _per_replica_losses(mirrored_strategy, losses.get_loss(name), zimg, ztxt, **kwargs)
  ref = (np_softmax_loss(zimg, ztxt, 10.0)[0] if name == "softmax"
         else np_sigmoid_loss(zimg, ztxt, 10.0, -3.0))
  # Each replica's local mean; their mean is the one-device loss on the concatenated batch.
  assert len(local) == 4 and not np.allclose(local, local[0])
  np.testing.assert_allclose(local.mean(), ref, rtol=1e-5)


def test_per_replica_loss_uses_only_local_negatives(mirrored_strategy):
  rng = np.random.default_rng(8)
  zimg, ztxt = _normed(rng, 16, 8), _normed(rng, 16, 8)
  local = _per_replica_losses(mirrored_strategy, losses.softmax_contrastive_loss, zimg, ztxt,
                              logit_scale=tf.constant(10.0), global_batch=False)
  ref = [np_softmax_loss(zimg[i:i + 4], ztxt[i:i + 4], 10.0)[0] for i in range(0, 16, 4)]
  np.testing.assert_allclose(local, ref, rtol=1e-5)
