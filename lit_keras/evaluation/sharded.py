"""Running a model over a whole set with every replica of a strategy taking its share, once.

`sharded_map` is how evaluation and the pre-computation of image embeddings use many devices and
hosts: every host reads the same deterministic stream of elements (cheap: records, strings),
replica r of R keeps the elements i with i mod R = r and alone prepares (decodes) and embeds them,
and an all-gather after each step hands every host the whole result, in the stream's order. No
element is computed twice; the chief then writes or scores the result. Each replica runs the same
number of steps: the last ones are padded and the padding dropped. With one replica (or no
strategy) it is a plain loop.
"""
import math

import numpy as np
import tensorflow as tf

AUTOTUNE = tf.data.AUTOTUNE


def _replica_dataset(elements, prepare, count, replica, num_replicas, batch_size,
                     prepare_batch):
  mine = elements().enumerate().filter(lambda i, _: i % num_replicas == replica)
  ds = mine.map(lambda _, x: prepare(x), num_parallel_calls=AUTOTUNE)
  own = (count - replica + num_replicas - 1) // num_replicas if count > replica else 0
  steps = math.ceil(count / (batch_size * num_replicas)) if count else 0
  pad = steps * batch_size - own
  if pad:
    zeros = tf.nest.map_structure(lambda s: tf.zeros(s.shape, s.dtype), ds.element_spec)
    ds = ds.concatenate(tf.data.Dataset.from_tensors(zeros).repeat(pad))
  ds = ds.batch(batch_size, drop_remainder=True)
  if prepare_batch is not None:
    ds = ds.map(prepare_batch, num_parallel_calls=AUTOTUNE)
  return ds.prefetch(AUTOTUNE)


def sharded_map(fn, elements, count, batch_size, *, prepare=lambda x: x, prepare_batch=None,
                strategy=None, jit_compile=None):
  """Computes `fn` on every element of `elements()`; returns a NumPy array [count, ...].

  Args:
    fn: a batch of prepared elements → a tensor [b, ...] (the model's part; on the accelerator).
    elements: `() -> tf.data.Dataset` of single elements, the same on every host.
    count: how many elements `elements()` yields.
    batch_size: per-replica batch size.
    prepare: element → element, on the host after sharding (e.g. decode an image).
    prepare_batch: batch → batch, on the host (e.g. tokenize strings).
    strategy: spreads the work over its replicas (default: one device).
    jit_compile: XLA-compile `fn` (a TPU always does).
  """
  strategy = strategy or tf.distribute.get_strategy()
  replicas = strategy.num_replicas_in_sync
  step_fn = tf.function(fn, jit_compile=jit_compile) if (replicas > 1 or jit_compile) else fn
  if count == 0:
    return np.zeros([0])
  if replicas == 1:  # eagerly, unless compiled: `fn` may be any Python (an exported model)
    ds = _replica_dataset(elements, prepare, count, 0, 1, batch_size, prepare_batch)
    out = np.concatenate([np.asarray(step_fn(b)) for b in ds])
    return out[:count]

  def dataset_fn(ctx):
    per_pipeline = replicas // ctx.num_input_pipelines
    first = ctx.input_pipeline_id * per_pipeline
    parts = [_replica_dataset(elements, prepare, count, first + j, replicas, batch_size,
                              prepare_batch) for j in range(per_pipeline)]
    if per_pipeline == 1:
      return parts[0]
    # Consecutive elements go to the pipeline's replicas in turn (tf.distribute's order).
    return tf.data.Dataset.choose_from_datasets(parts, tf.data.Dataset.range(per_pipeline).repeat())

  def replica_step(batch):
    out = step_fn(batch)
    return tf.distribute.get_replica_context().all_gather(out, axis=0)

  run = tf.function(lambda b: strategy.run(replica_step, args=(b,)))
  steps = math.ceil(count / (batch_size * replicas))
  iterator = iter(strategy.distribute_datasets_from_function(dataset_fn))
  chunks = []
  for _ in range(steps):
    gathered = np.asarray(strategy.experimental_local_results(run(next(iterator)))[0])
    # [replica, position] → [position, replica]: element i = replica + R · (step · b + position).
    gathered = gathered.reshape((replicas, batch_size) + gathered.shape[1:])
    chunks.append(np.swapaxes(gathered, 0, 1).reshape((replicas * batch_size,) +
                                                      gathered.shape[2:]))
  return np.concatenate(chunks)[:count]
