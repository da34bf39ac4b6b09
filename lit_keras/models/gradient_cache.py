"""The exact gradient of the global-batch loss, computed in chunks (gradient caching).

A contrastive loss couples every pair of the global batch, so the batch cannot simply be split
into micro-batches whose losses are accumulated: that changes the objective (fewer negatives per
row). Gradient caching (Gao et al., 2021, "Scaling deep contrastive learning batch size under
memory limited setup") keeps the objective and bounds the memory of the towers' activations:

1. Embed this replica's batch chunk by chunk with nothing recorded (`chunk_size` rows at a time,
   one chunk's activations alive at once). A locked tower's features are kept, so that it is
   never run again.
2. Compute the loss on the whole batch from those embeddings — through the loss's cross-replica
   gather, so it is the global loss — and its gradient with respect to the embeddings (and to the
   temperature, which enters only there).
3. Re-run each chunk with the tape on, from the kept features for a locked tower (only its
   projection head is re-run), and back-propagate the cached embedding gradients:
   ∂L/∂θ = Σ_chunks (∂z_chunk/∂θ)ᵀ · ∂L/∂z_chunk.

The loss and the gradients equal the unchunked step's on the same batch (to float32 rounding),
provided a tower's training-mode forward is a function of its inputs alone: towers with dropout
draw fresh masks in the re-run (the gradient is then taken at slightly different activations),
and BatchNorm normalises each chunk by its own statistics. LiT's towers (ViT/BERT with LayerNorm,
no dropout; any locked tower) satisfy this. When `chunk_size` does not divide the per-replica
batch, the last chunk is smaller (same result).

Chunks run one after another in a `tf.while_loop` (with a static batch, a smaller last chunk after
it; a batch size known only at run time is chunked in the loop too, outside XLA), so the graph
does not grow with the number of chunks and the executor never holds two chunks' activations.
"""
import tensorflow as tf

from lit_keras.losses import gradients


def _rows(data):
  """The batch size: a Python int when any input's is static, else a scalar tensor."""
  for x in tf.nest.flatten(data):
    if x.shape.rank and x.shape[0] is not None:
      return int(x.shape[0])
  return tf.shape(tf.nest.flatten(data)[0])[0]


def _slice_rows(data, start, size):
  """Rows [start, start + size) of every input (a static `size` keeps the shape static, as XLA
  needs)."""
  def one(x):
    rest = [d if d is not None else -1 for d in x.shape[1:]]  # static sizes where known (XLA)
    return tf.slice(x, tf.stack([start] + [0] * len(rest)), tf.stack([size] + rest))
  return tf.nest.map_structure(one, data)


def _for_each_chunk(data, chunk_size, step, state):
  """state = step(i, chunk i of `data`, state) for the chunks in order, one at a time (a
  `tf.while_loop`; with a static batch, full chunks in the loop and a smaller last chunk after
  it, so every shape stays static)."""
  rows = _rows(data)
  loop = lambda n, body, state: tf.while_loop(lambda i, _: i < n, lambda i, s: (i + 1, body(i, s)),
                                              (tf.constant(0), state), parallel_iterations=1)[1]
  if isinstance(rows, int):
    full, rest = divmod(rows, chunk_size)
    if full:
      state = loop(full, lambda i, s: step(i, _slice_rows(data, i * chunk_size, chunk_size), s),
                   state)
    if rest:
      state = step(tf.constant(full), _slice_rows(data, full * chunk_size, rest), state)
    return state
  n = (rows + chunk_size - 1) // chunk_size
  return loop(n, lambda i, s: step(
      i, _slice_rows(data, i * chunk_size, tf.minimum(chunk_size, rows - i * chunk_size)), s),
              state)


def _map_chunks(fn, data, chunk_size, num_outputs):
  """fn(chunk) → `num_outputs` float32 tensors per chunk, concatenated back over the rows."""
  shapes = []  # each output's shape past the rows, seen when `fn` is traced

  def run(data, n, uniform):
    arrays = [tf.TensorArray(tf.float32, size=n, infer_shape=uniform) for _ in range(num_outputs)]

    def write(i, chunk, arrays):
      outs = fn(chunk)
      shapes[:] = [o.shape[1:] for o in outs]
      return [a.write(i, o) for a, o in zip(arrays, outs)]

    return [a.concat() for a in _for_each_chunk(data, chunk_size, write, arrays)]

  rows = _rows(data)
  if isinstance(rows, int):
    # Full chunks through the loop (equal shapes, as XLA's TensorArrays need), the rest after.
    full, rest = divmod(rows, chunk_size)
    parts = []
    if full:
      parts.append(run(_slice_rows(data, 0, full * chunk_size), full, True))
    if rest:
      parts.append(list(fn(_slice_rows(data, full * chunk_size, rest))))
    outs = [tf.concat(list(x), axis=0) for x in zip(*parts)]
  else:
    outs = run(data, (rows + chunk_size - 1) // chunk_size, False)
  for o, shape in zip(outs, shapes):
    o.set_shape(tf.TensorShape([rows if isinstance(rows, int) else None]).concatenate(shape))
  return outs


def _sum_chunks(fn, data, chunk_size, zeros):
  """Σ over chunks of fn(chunk) (a list of tensors shaped like `zeros`)."""
  return _for_each_chunk(data, chunk_size,
                         lambda i, chunk, acc: [a + g for a, g in zip(acc, fn(chunk))], zeros)


def _dense(g, v):
  if g is None:
    return tf.zeros_like(v)
  return tf.convert_to_tensor(g) if isinstance(g, tf.IndexedSlices) else g


class _Side:
  """One tower with its head: what is kept from pass 1 and how a chunk is re-run."""

  def __init__(self, model, which):
    self.tower = getattr(model, f"{which}_tower")
    self.head = getattr(model, f"{which}_head")
    self.embed = model._embed  # pylint: disable=protected-access
    self.which = which
    # A locked tower (or one without trainable weights) is run once; its features are kept.
    self.keep_features = not self.tower.trainable_weights

  def first_pass(self, chunk):
    if self.keep_features:
      features = tf.cast(self.tower(chunk, training=True), tf.float32)
      z, norm = self.embed(_Identity(), self.head, features, True)
      return z, norm, features
    z, norm = self.embed(self.tower, self.head, chunk, True)
    return z, norm

  def rerun(self, chunk_or_features):
    if self.keep_features:
      return self.embed(_Identity(), self.head, chunk_or_features, True)[0]
    return self.embed(self.tower, self.head, chunk_or_features, True)[0]


class _Identity:

  def __call__(self, x, training=None):
    del training
    return x


def cached_gradients(model, data, chunk_size, loss_fn, variables):
  """This replica's share of the exact global-batch gradients, computed in chunks.

  Args:
    model: a `LiTModel` (towers, heads and `logit_scale`).
    data: this replica's batch {"image", "text"}.
    chunk_size: rows embedded at a time (per replica).
    loss_fn: `(zimg, ztxt, logit_scale, logit_bias) -> (loss, metrics)`.
    variables: the variables to differentiate.

  Returns:
    (variables, gradients, metrics) as `gradients.global_gradients`: summed over replicas.
  """
  chunk_size = int(chunk_size)
  sides = [_Side(model, "image"), _Side(model, "text")]
  inputs = [data["image"], data["text"]]
  # 1. Embed chunk by chunk, nothing recorded.
  kept = []
  for side, x in zip(sides, inputs):
    with tf.name_scope(f"{side.which}_first_pass"):
      kept.append(_map_chunks(lambda c, s=side: list(s.first_pass(c)), x, chunk_size,
                              3 if side.keep_features else 2))
  (zimg, img_norm, *img_feats), (ztxt, txt_norm, *txt_feats) = kept
  zimg, ztxt = tf.stop_gradient(zimg), tf.stop_gradient(ztxt)
  # 2. The loss over the batch (gathered across replicas) and its embedding gradients.
  scale_vars = model.logit_scale.trainable_variables
  with tf.GradientTape(watch_accessed_variables=False) as tape:
    tape.watch([zimg, ztxt] + scale_vars)
    scales = model.logit_scale(None)
    loss, metrics = loss_fn(zimg, ztxt, scales["logit_scale"], scales.get("logit_bias"))
    scaled_loss = loss / gradients.num_replicas()
  dzimg, dztxt, *dscale = tape.gradient(scaled_loss, [zimg, ztxt] + scale_vars)
  # 3. Re-run each chunk under a tape and back-propagate the cached embedding gradients.
  grad_of = {id(v): g for v, g in zip(scale_vars, dscale) if g is not None}
  got_gradient = {}
  for side, x, feats, dz in ((sides[0], inputs[0], img_feats, dzimg),
                             (sides[1], inputs[1], txt_feats, dztxt)):
    mine = {id(w) for w in side.tower.trainable_variables + side.head.trainable_variables}
    watched = [v for v in variables if id(v) in mine]
    if not watched:
      continue
    source = feats[0] if side.keep_features else x

    def chunk_grads(args, side=side, watched=watched):
      chunk, dz_chunk = args
      with tf.GradientTape(watch_accessed_variables=False) as t:
        t.watch(watched)
        z = side.rerun(chunk)
        surrogate = tf.reduce_sum(z * dz_chunk)
      grads = t.gradient(surrogate, watched)
      for v, g in zip(watched, grads):  # known at trace time
        got_gradient[id(v)] = got_gradient.get(id(v), False) or g is not None
      return [_dense(g, v) for g, v in zip(grads, watched)]

    with tf.name_scope(f"{side.which}_second_pass"):
      summed = _sum_chunks(chunk_grads, (source, dz), chunk_size,
                           [tf.zeros_like(v) for v in watched])
    for v, g in zip(watched, summed):
      if got_gradient.get(id(v)):
        grad_of[id(v)] = g
  metrics = dict(metrics, **{"img/norm": tf.reduce_mean(img_norm),
                             "txt/norm": tf.reduce_mean(txt_norm)})
  grads = [grad_of.get(id(v)) for v in variables]
  return gradients.reduce_gradients(variables, grads, loss, metrics)
