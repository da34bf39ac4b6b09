"""The fused AdamW: Adam's update (NumPy reference), tf_keras's variables, decay, checkpoints,
sparse path and configs, on one device, 4 replicas and under XLA."""
import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from lit_keras.training import optimizers

LR, WD, B1, B2, EPS = 1e-2, 0.1, 0.9, 0.999, 1e-7
STEPS = 6


def _problem(seed=0):
  rng = np.random.default_rng(seed)
  init = {"kernel": rng.normal(size=(3, 5)).astype(np.float32),
          "bias": rng.normal(size=(7,)).astype(np.float32)}
  grads = [{k: rng.normal(size=v.shape).astype(np.float32) for k, v in init.items()}
           for _ in range(STEPS)]
  return init, grads


def numpy_adamw(init, grads, lr=LR, wd=WD, b1=B1, b2=B2, eps=EPS, no_decay=("bias",)):
  """AdamW in float64: decoupled decay `w -= lr * wd * w` (not on `no_decay`), then Adam with
  bias correction, epsilon added to sqrt(v) before the correction (Kingma & Ba's "efficient"
  ordering, end of their section 2, which Keras follows)."""
  w = {k: v.astype(np.float64) for k, v in init.items()}
  m = {k: np.zeros_like(v) for k, v in w.items()}
  v = {k: np.zeros_like(x) for k, x in w.items()}
  for t, g in enumerate(grads, start=1):
    for k in w:
      if k not in no_decay:
        w[k] = w[k] - lr * wd * w[k]
      m[k] = b1 * m[k] + (1 - b1) * g[k]
      v[k] = b2 * v[k] + (1 - b2) * g[k] ** 2
      m_hat, v_hat = m[k] / (1 - b1 ** t), v[k] / (1 - b2 ** t)
      w[k] = w[k] - lr * m_hat / (np.sqrt(v_hat) + eps / np.sqrt(1 - b2 ** t))
  return w, m, v


def _make(cls, **kwargs):
  opt = cls(learning_rate=LR, weight_decay=WD, beta_1=B1, beta_2=B2, epsilon=EPS, **kwargs)
  opt.exclude_from_weight_decay(var_names=["bias"])
  return opt


def _variables(init):
  return {k: tf.Variable(v, name=k) for k, v in init.items()}


def _run(opt, init, grads, jit_compile=False):
  variables = _variables(init)
  opt.build(list(variables.values()))

  @tf.function(jit_compile=jit_compile)
  def apply(g):
    opt.apply_gradients([(g[k], variables[k]) for k in variables])

  for g in grads:
    apply({k: tf.constant(x) for k, x in g.items()})
  return variables


def _slots(opt, var):
  index = opt._index_dict[opt._var_key(var)]  # pylint: disable=protected-access
  return (opt._momentums[index].numpy(),  # pylint: disable=protected-access
          opt._velocities[index].numpy())  # pylint: disable=protected-access


# NumPy's Adam (exact 1 - beta_2) against the float32 kernel (1 - float32(0.999)): the second
# moment differs by 1.3e-5 relative, the weights by ~1e-7 after 6 steps of 1e-2. A wrong update
# (no bias correction, decay on the bias, coupled decay) moves them by ~1e-3 or more.
ATOL = 1e-6


@pytest.mark.parametrize("jit_compile", [False, True])
def test_matches_numpy_adamw(jit_compile):
  init, grads = _problem()
  ref_w, ref_m, ref_v = numpy_adamw(init, grads)
  opt = _make(optimizers.AdamW)
  variables = _run(opt, init, grads, jit_compile)
  for k, var in variables.items():
    np.testing.assert_allclose(var.numpy(), ref_w[k], atol=ATOL, rtol=0, err_msg=k)
    m, v = _slots(opt, var)
    np.testing.assert_allclose(m, ref_m[k], rtol=1e-6, err_msg=k)
    np.testing.assert_allclose(v, ref_v[k], rtol=3e-5, err_msg=k)
  assert int(opt.iterations) == STEPS


def test_same_as_tf_keras_adamw_and_bias_not_decayed():
  init, grads = _problem(1)
  ours = _run(_make(optimizers.AdamW), init, grads)
  theirs = _run(_make(tf_keras.optimizers.AdamW), init, grads)
  for k in init:
    np.testing.assert_allclose(ours[k].numpy(), theirs[k].numpy(), atol=ATOL, rtol=0)
  # The excluded bias follows Adam alone: the NumPy run with decay on it is far off.
  decayed_bias = numpy_adamw(init, grads, no_decay=())[0]["bias"]
  assert np.max(np.abs(ours["bias"].numpy() - decayed_bias)) > 100 * ATOL


def test_sparse_gradients_keep_tf_keras_update_bit_for_bit():
  rng = np.random.default_rng(2)
  table = rng.normal(size=(10, 4)).astype(np.float32)
  grads = [tf.IndexedSlices(tf.constant(rng.normal(size=(2, 4)).astype(np.float32)),
                            tf.constant([step, 7]), tf.constant([10, 4])) for step in range(3)]
  results = []
  for cls in (optimizers.AdamW, tf_keras.optimizers.AdamW):
    var = tf.Variable(table)
    opt = cls(learning_rate=LR, weight_decay=WD)
    for g in grads:
      opt.apply_gradients([(g, var)])
    results.append(var.numpy())
  np.testing.assert_array_equal(results[0], results[1])
  assert not np.array_equal(results[0], table)


def test_four_replicas_equal_numpy(mirrored_strategy):
  """Under MirroredStrategy each replica passes its gradient; tf_keras sums them and the fused
  update runs on every replica's copy of the variables and slots."""
  init, grads = _problem(3)
  n = mirrored_strategy.num_replicas_in_sync
  per_replica = [[{k: g[k] * (r + 1) for k in g} for g in grads] for r in range(n)]
  summed = [{k: sum(per_replica[r][s][k] for r in range(n)) for k in init}
            for s in range(STEPS)]
  with mirrored_strategy.scope():
    variables = _variables(init)
    opt = _make(optimizers.AdamW)
    opt.build(list(variables.values()))

  # [replica, step, ...] per variable.
  table = {k: tf.constant(np.array([[g[k] for g in per_replica[r]] for r in range(n)]))
           for k in init}

  @tf.function
  def step(s):
    def replica_fn():
      r = tf.distribute.get_replica_context().replica_id_in_sync_group
      opt.apply_gradients([(table[k][r, s], variables[k]) for k in variables])
    mirrored_strategy.run(replica_fn)

  for s in range(STEPS):
    step(tf.constant(s))
  ref_w = numpy_adamw(init, summed)[0]
  for k, var in variables.items():
    copies = mirrored_strategy.experimental_local_results(var)
    assert len(copies) == n
    for copy in copies:
      np.testing.assert_allclose(copy.numpy(), ref_w[k], atol=ATOL * n, rtol=0, err_msg=k)
    for copy in copies[1:]:
      np.testing.assert_array_equal(copy.numpy(), copies[0].numpy())


def test_checkpoint_from_tf_keras_adamw_restores(tmp_path):
  init, grads = _problem(4)
  theirs = _make(tf_keras.optimizers.AdamW)
  variables = _run(theirs, init, grads[:3])
  path = tf.train.Checkpoint(optimizer=theirs, **variables).save(str(tmp_path / "ckpt"))

  ours = _make(optimizers.AdamW)
  restored = _variables({k: np.zeros_like(v) for k, v in init.items()})
  ours.build(list(restored.values()))
  tf.train.Checkpoint(optimizer=ours, **restored).restore(path).assert_consumed()
  assert int(ours.iterations) == 3
  for k in init:
    np.testing.assert_array_equal(restored[k].numpy(), variables[k].numpy())
    for a, b in zip(_slots(ours, restored[k]), _slots(theirs, variables[k])):
      np.testing.assert_array_equal(a, b)
  # Continuing with ours lands where the NumPy run of all six steps does.
  for g in grads[3:]:
    ours.apply_gradients([(tf.constant(g[k]), restored[k]) for k in restored])
  ref_w = numpy_adamw(init, grads)[0]
  for k in init:
    np.testing.assert_allclose(restored[k].numpy(), ref_w[k], atol=ATOL, rtol=0)


def test_config_round_trip():
  opt = _make(optimizers.AdamW, clipnorm=None)
  copy = tf_keras.optimizers.deserialize(tf_keras.optimizers.serialize(opt))
  assert type(copy) is optimizers.AdamW
  assert copy.get_config() == opt.get_config()
  assert tf_keras.saving.get_registered_name(optimizers.AdamW) == "lit_keras>AdamW"


def test_dense_update_is_one_fused_kernel_per_variable():
  init, grads = _problem(5)
  opt = _make(optimizers.AdamW)
  variables = _variables(init)
  opt.build(list(variables.values()))

  @tf.function
  def apply(g):
    opt.apply_gradients([(g[k], variables[k]) for k in variables])

  graph = apply.get_concrete_function(
      {k: tf.TensorSpec(v.shape, tf.float32) for k, v in init.items()}).graph
  graph_def = graph.as_graph_def()
  op_types = [n.op for n in graph_def.node] + [
      n.op for f in graph_def.library.function for n in f.node_def]
  assert op_types.count("ResourceApplyAdam") == len(init)
  # Only the decoupled decay of the one decayed variable writes a variable besides the kernel
  # (and the step counter).
  assert op_types.count("AssignSubVariableOp") == 1
