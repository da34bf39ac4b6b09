"""Softmax (CLIP/LiT) and sigmoid (SigLIP) contrastive losses over the global batch.

Distribution lives here and in the training step, nowhere else. The scheme, and why it is exact:

- Inside `strategy.run`, each replica scores *its own rows* against the embeddings *all-gathered
  from every replica* (`ReplicaContext.all_gather`, whose backward is an all-reduce-sum and a
  slice, so it is differentiable). Replica r's i→t rows are the r-th block of rows of the global
  [B, B] logits, and its t→i rows the r-th block of the transposed logits: the replicas' rows
  partition the global loss's terms, so with equal local batches the global loss is exactly the
  mean of the replicas' local mean losses.
- The training step divides each replica's local loss by the replica count and sums the
  replicas' gradients. Each embedding's gradient then arrives from every replica's loss through
  the gather's backward, so the summed gradient is the gradient of the global loss — the loss
  and gradients of one device on the concatenated batch (`tests/training/test_step.py`, 1e-5).
- big_vision computes the *full* B×B loss on every device from the gathered embeddings and
  averages it across devices; the value is the same, but each device does all B² work. Ours
  does B²/R per replica. A stop-gradient gather would be wrong: local-rows-only gives wrong
  tower gradients, and the full loss on every replica multiplies the temperature gradient by R.

Outside any strategy (or with one replica) the functions are the ordinary single-device losses.
Set `global_batch=False` for the per-replica ("local") loss the paper compares against, and
`block_size=N` to compute the loss in blocks of N columns without the [b, B] logits matrix
(`blocked.py`; the same values and gradients, far less memory at large batches).
"""
import functools

import tensorflow as tf

from lit_keras.losses import blocked


def _replica_gather(x, global_batch):
  """Returns (all replicas' rows concatenated, offset of this replica's rows in them)."""
  ctx = tf.distribute.get_replica_context()
  if not global_batch or ctx is None or ctx.num_replicas_in_sync == 1:
    return x, tf.constant(0, tf.int32)
  gathered = ctx.all_gather(x, axis=0)
  replica_id = tf.cast(ctx.replica_id_in_sync_group, tf.int32)
  return gathered, replica_id * tf.shape(x)[0]


def _accuracy(logits, labels):
  pred = tf.argmax(logits, axis=-1, output_type=tf.int32)
  return tf.reduce_mean(tf.cast(tf.equal(pred, labels), tf.float32))


def softmax_contrastive_loss(zimg, ztxt, logit_scale, logit_bias=None, global_batch=True,
                             block_size=None):
  """½ (CE image→text + CE text→image) with logits = zimg·ztxtᵀ·scale, over the global batch.

  Args:
    zimg, ztxt: this replica's L2-normalised embeddings [b, d].
    logit_scale: exp(t), the learned inverse temperature (scalar).
    logit_bias: ignored unless given (LiT's softmax loss has no bias); added to the logits.
    global_batch: score against all replicas' embeddings (True, LiT) or only the local ones.
    block_size: None: form the [b, B] logits; N: in blocks of N columns (`blocked.py`).

  Returns:
    (loss, metrics): this replica's mean loss (scalar float32) and a dict of scalars:
    "i2t_acc", "t2i_acc" (in-batch top-1 over the global batch), "temperature" (= logit_scale).
  """
  zimg = tf.cast(zimg, tf.float32)
  ztxt = tf.cast(ztxt, tf.float32)
  all_img, offset = _replica_gather(zimg, global_batch)
  all_txt, _ = _replica_gather(ztxt, global_batch)
  labels = offset + tf.range(tf.shape(zimg)[0], dtype=tf.int32)
  if block_size:
    # CE = lse(row) − the matching logit; a constant bias cancels in the softmax.
    matching = tf.reduce_sum(zimg * ztxt, axis=-1) * logit_scale
    lse_i2t, pred_i2t = blocked.row_logsumexp(zimg, all_txt, logit_scale, 0.0, block_size)
    lse_t2i, pred_t2i = blocked.row_logsumexp(ztxt, all_img, logit_scale, 0.0, block_size)
    loss_i2t = tf.reduce_mean(lse_i2t - matching)
    loss_t2i = tf.reduce_mean(lse_t2i - matching)
    acc = lambda pred: tf.reduce_mean(tf.cast(tf.equal(pred, labels), tf.float32))
    acc_i2t, acc_t2i = acc(pred_i2t), acc(pred_t2i)
  else:
    logits_i2t = tf.matmul(zimg, all_txt, transpose_b=True) * logit_scale
    logits_t2i = tf.matmul(ztxt, all_img, transpose_b=True) * logit_scale
    if logit_bias is not None:
      logits_i2t += logit_bias
      logits_t2i += logit_bias
    ce = tf.nn.sparse_softmax_cross_entropy_with_logits
    loss_i2t = tf.reduce_mean(ce(labels=labels, logits=logits_i2t))
    loss_t2i = tf.reduce_mean(ce(labels=labels, logits=logits_t2i))
    acc_i2t, acc_t2i = _accuracy(logits_i2t, labels), _accuracy(logits_t2i, labels)
  loss = 0.5 * (loss_i2t + loss_t2i)
  metrics = {
      "i2t_acc": acc_i2t,
      "t2i_acc": acc_t2i,
      "temperature": tf.convert_to_tensor(logit_scale, tf.float32),
  }
  return loss, metrics


def sigmoid_contrastive_loss(zimg, ztxt, logit_scale, logit_bias, global_batch=True,
                             block_size=None):
  """SigLIP's pairwise sigmoid loss over the global batch.

  loss = −(1/B) Σ_ij log σ(y_ij · (scale · zimg_i·ztxt_j + bias)), y = +1 on matching pairs and
  −1 elsewhere, B the global batch. Each replica computes its rows' share, normalised so that the
  mean over replicas is the one-device loss on the concatenated batch. `block_size=N` sums the
  pairs in blocks of N columns (`blocked.py`).

  Returns:
    (loss, metrics) as for `softmax_contrastive_loss`, plus "bias".
  """
  if logit_bias is None:
    raise ValueError("the sigmoid loss needs a learned bias: build LiTModel(use_bias=True)")
  zimg = tf.cast(zimg, tf.float32)
  ztxt = tf.cast(ztxt, tf.float32)
  all_img, offset = _replica_gather(zimg, global_batch)
  all_txt, _ = _replica_gather(ztxt, global_batch)
  b = tf.shape(zimg)[0]
  labels = offset + tf.range(b, dtype=tf.int32)
  if block_size:
    total, pred_i2t = blocked.log_sigmoid_sum(zimg, all_txt, logit_scale, logit_bias, labels,
                                              block_size)
    loss = -total / tf.cast(b, tf.float32)
    # The t→i accuracy needs the row argmax of the other direction (no gradient).
    _, pred_t2i = blocked.row_logsumexp(tf.stop_gradient(ztxt), tf.stop_gradient(all_img),
                                        tf.stop_gradient(logit_scale), 0.0, block_size)
    acc = lambda pred: tf.reduce_mean(tf.cast(tf.equal(pred, labels), tf.float32))
    acc_i2t, acc_t2i = acc(pred_i2t), acc(pred_t2i)
  else:
    logits = tf.matmul(zimg, all_txt, transpose_b=True) * logit_scale + logit_bias
    signs = 2.0 * tf.one_hot(labels, tf.shape(all_txt)[0], dtype=tf.float32) - 1.0
    loss = -tf.reduce_sum(tf.math.log_sigmoid(signs * logits)) / tf.cast(b, tf.float32)
    logits_t2i = tf.matmul(ztxt, all_img, transpose_b=True) * logit_scale + logit_bias
    acc_i2t, acc_t2i = _accuracy(logits, labels), _accuracy(logits_t2i, labels)
  metrics = {
      "i2t_acc": acc_i2t,
      "t2i_acc": acc_t2i,
      "temperature": tf.convert_to_tensor(logit_scale, tf.float32),
      "bias": tf.convert_to_tensor(logit_bias, tf.float32),
  }
  return loss, metrics


LOSSES = {"softmax": softmax_contrastive_loss, "sigmoid": sigmoid_contrastive_loss}


def get_loss(name, block_size=None):
  """The loss named `name` ("softmax" or "sigmoid"); with `block_size`, its blocked form."""
  if name not in LOSSES:
    raise ValueError(f"Unknown loss {name!r}; expected one of {sorted(LOSSES)}")
  if block_size is not None and (isinstance(block_size, bool) or int(block_size) < 1):
    raise ValueError(f"block_size must be a positive integer or None, got {block_size!r}")
  if not block_size:
    return LOSSES[name]
  return functools.partial(LOSSES[name], block_size=int(block_size))
