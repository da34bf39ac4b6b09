"""The contrastive losses in blocks of the global batch: no [b, B] logits matrix, forward or back.

The softmax loss needs, for each of this replica's b rows, the log-sum-exp of its logits against
the B gathered columns; the sigmoid loss needs the sum of log σ(±logit) over them. Both are
computed here over column blocks of `block_size` (a `tf.while_loop` carrying only [b]-sized running
statistics), with a custom gradient that recomputes each block's logits in the backward pass:

  logits_ij = scale · q_i·k_j + bias,   C_ij = ∂out/∂logits_ij (per block),
  ∂q_i = scale Σ_j C_ij k_j,   ∂k_j = scale Σ_i C_ij q_i,   ∂scale = Σ_ij C_ij q_i·k_j,
  ∂bias = Σ_ij C_ij,

with C = g_i · softmax_ij for the row log-sum-exp and C = g · y_ij σ(−y_ij logits_ij) for the
pairwise log-sigmoid sum. Peak memory is O(b · block_size) instead of O(b · B): at a 32k global
batch on one host the full float32 logits are 4 GiB, and twice that with their gradient. The
values equal the unblocked losses to float32 rounding (tests/losses/test_blocked.py, against NumPy).
"""
import tensorflow as tf


def _blocks(k, block_size):
  """[B, d] → ([n, block, d] zero-padded, valid-column mask [n, block])."""
  n_cols = tf.shape(k)[0]
  n = (n_cols + block_size - 1) // block_size
  pad = n * block_size - n_cols
  kb = tf.reshape(tf.pad(k, [[0, pad], [0, 0]]), [n, block_size, -1])
  valid = tf.reshape(tf.range(n * block_size) < n_cols, [n, block_size])
  return kb, valid, n


def _row_stats_fn(kind, block_size):
  """The blocked row reduction with its custom gradient.

  kind "lse": returns (row log-sum-exp of the logits [b], row argmax [b]).
  kind "logsig": returns (Σ_ij log σ(y_ij logits_ij) (scalar), row argmax [b]); y = +1 at
  column `labels_i`, −1 elsewhere.
  """

  @tf.custom_gradient
  def stats(q, k, scale, bias, labels):
    kb, valid, n = _blocks(k, block_size)
    b = tf.shape(q)[0]
    col0 = tf.range(block_size)

    def logits_of(i):
      qk = tf.matmul(q, kb[i], transpose_b=True)
      return qk * scale + bias, qk, valid[i][None, :]

    def body(i, run_max, run_sum, best, best_idx, total):
      logits, _, ok = logits_of(i)
      masked = tf.where(ok, logits, -float("inf"))
      blk_best = tf.reduce_max(masked, axis=1)
      blk_idx = tf.argmax(masked, axis=1, output_type=tf.int32) + i * block_size
      better = blk_best > best  # ties keep the earlier column, as argmax over the full row
      best_idx = tf.where(better, blk_idx, best_idx)
      best = tf.maximum(best, blk_best)
      if kind == "lse":
        new_max = tf.maximum(run_max, blk_best)
        run_sum = (run_sum * tf.exp(run_max - new_max)
                   + tf.reduce_sum(tf.exp(masked - new_max[:, None]), axis=1))
        run_max = new_max
      else:
        y = tf.where(col0[None, :] + i * block_size == labels[:, None], 1.0, -1.0)
        total += tf.reduce_sum(tf.where(ok, tf.math.log_sigmoid(y * logits), 0.0))
      return i + 1, run_max, run_sum, best, best_idx, total

    neg_inf = tf.fill([b], -float("inf"))
    init = (tf.constant(0), neg_inf, tf.zeros([b]), neg_inf, tf.zeros([b], tf.int32),
            tf.constant(0.0))
    _, run_max, run_sum, _, best_idx, total = tf.while_loop(
        lambda i, *_: i < n, body, init, parallel_iterations=1)
    out = run_max + tf.math.log(run_sum) if kind == "lse" else total

    def grad(g_out, g_idx=None):
      del g_idx  # the argmax is not differentiable

      def gbody(i, dq, dk, dscale, dbias):
        logits, qk, ok = logits_of(i)
        if kind == "lse":
          coef = g_out[:, None] * tf.exp(logits - out[:, None])
        else:
          y = tf.where(col0[None, :] + i * block_size == labels[:, None], 1.0, -1.0)
          coef = g_out * y * tf.sigmoid(-y * logits)
        coef = tf.where(ok, coef, 0.0)
        dq += scale * tf.matmul(coef, kb[i])
        dk = dk.write(i, scale * tf.matmul(coef, q, transpose_a=True))
        dscale += tf.reduce_sum(coef * qk)
        dbias += tf.reduce_sum(coef)
        return i + 1, dq, dk, dscale, dbias

      init = (tf.constant(0), tf.zeros_like(q), tf.TensorArray(q.dtype, size=n),
              tf.constant(0.0), tf.constant(0.0))
      _, dq, dk, dscale, dbias = tf.while_loop(lambda i, *_: i < n, gbody, init,
                                               parallel_iterations=1)
      dk = tf.reshape(dk.stack(), [-1, tf.shape(k)[1]])[:tf.shape(k)[0]]
      return dq, dk, dscale, dbias, None

    return (out, best_idx), grad

  return stats


def row_logsumexp(q, k, scale, bias=0.0, block_size=1024):
  """Per row of q, log Σ_j exp(scale·q·k_j + bias) over the rows of k, in column blocks.
  Returns (lse [b], argmax [b])."""
  return _row_stats_fn("lse", int(block_size))(
      q, k, tf.convert_to_tensor(scale, tf.float32), tf.convert_to_tensor(bias, tf.float32),
      tf.zeros([tf.shape(q)[0]], tf.int32))


def log_sigmoid_sum(q, k, scale, bias, labels, block_size=1024):
  """Σ_ij log σ(y_ij (scale·q_i·k_j + bias)), y_ij = +1 iff j == labels_i, in column blocks.
  Returns (sum (scalar), row argmax of the logits [b])."""
  return _row_stats_fn("logsig", int(block_size))(
      q, k, tf.convert_to_tensor(scale, tf.float32), tf.convert_to_tensor(bias, tf.float32),
      tf.convert_to_tensor(labels, tf.int32))
