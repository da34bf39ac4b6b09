"""tf.data input pipelines for training and evaluation, from TFRecords of `schema`.

Training: file-level sharding by `tf.distribute.InputContext` (for
`strategy.distribute_datasets_from_function`), shuffled files, parallel interleave, example
shuffle, parallel decode with an Inception crop, one caption sampled per image per step,
tokenisation inside the pipeline, `drop_remainder` batches, prefetch. Randomness is stateless per
(seed, example index), so a seed fixes the whole stream.

Bad input never crashes a run or changes a batch's shape: undecodable images and examples without
any non-empty caption are dropped and counted (`DropCounter`). A corrupt TFRecord shard stops the
iteration with TensorFlow's `DataLossError`; the trainer and the evaluators turn it into
`CorruptDataError` naming the file and the byte offset (`raise_corruption`). With
`skip_corrupt=True` the rest of a corrupt file is skipped with a logged warning instead.
"""
import contextlib
import re

import tensorflow as tf

from lit_keras.data import preprocess
from lit_keras.data import schema

AUTOTUNE = tf.data.AUTOTUNE
DROP_REASONS = ("undecodable_image", "no_caption")


class CorruptDataError(RuntimeError):
  pass


class DropCounter:
  """Counts examples the pipeline dropped, by reason (tf.Variables updated inside tf.data)."""

  def __init__(self):
    with tf.init_scope():
      self._vars = {r: tf.Variable(0, dtype=tf.int64, trainable=False, name=f"dropped_{r}")
                    for r in DROP_REASONS}

  def keep(self, example):
    """A `Dataset.filter` predicate that counts what it drops."""
    ok_image, ok_text = example["valid_image"], example["valid_text"]
    with tf.control_dependencies([
        self._vars["undecodable_image"].assign_add(tf.cast(tf.logical_not(ok_image), tf.int64)),
        self._vars["no_caption"].assign_add(
            tf.cast(tf.logical_and(ok_image, tf.logical_not(ok_text)), tf.int64))]):
      return tf.logical_and(ok_image, ok_text)

  def counts(self):
    return {r: int(v.numpy()) for r, v in self._vars.items()}


def list_files(file_pattern):
  patterns = [file_pattern] if isinstance(file_pattern, str) else list(file_pattern)
  files = sorted(f for p in patterns for f in tf.io.gfile.glob(p))
  if not files:
    raise FileNotFoundError(f"no TFRecord files match {file_pattern!r}")
  return files


def find_corruption(files):
  """Scans shards record by record; returns [(file, error message)] for corrupt ones."""
  bad = []
  for f in files:
    try:
      for _ in tf.data.TFRecordDataset(f):
        pass
    except (tf.errors.DataLossError, tf.errors.InvalidArgumentError) as e:
      bad.append((f, _clean(e.message)))
  return bad


def _clean(message):
  """TensorFlow's error text without its graph-node prefix and op suffix."""
  message = re.sub(r"\{\{[^}]*\}\}\s*", "", message.split("\n")[0])
  return re.sub(r"\s*\[Op:.*$", "", message).strip()


def raise_corruption(files, error):
  """Re-raises a DataLossError from a multi-file pipeline naming the bad file(s)."""
  bad = find_corruption(files)
  where = "; ".join(f"{f}: {msg}" for f, msg in bad) or f"one of {len(files)} files"
  raise CorruptDataError(
      f"corrupt TFRecord data in {where}. Re-convert the shard, or pass skip_corrupt=True "
      f"(--config.data.skip_corrupt=True) to skip the rest of a corrupt file.") from error


@contextlib.contextmanager
def naming_corruption(file_pattern):
  """Code reading `file_pattern` under this context raises `CorruptDataError` naming the corrupt
  file and offset, instead of TensorFlow's `DataLossError`."""
  try:
    yield
  except tf.errors.DataLossError as e:
    raise_corruption(list_files(file_pattern), e)


def _records(files, input_context, seed, shuffle_files, cycle_length, skip_corrupt, repeat):
  ds = tf.data.Dataset.from_tensor_slices(files)
  if input_context is not None and input_context.num_input_pipelines > 1:
    if len(files) < input_context.num_input_pipelines:
      raise ValueError(f"{len(files)} files cannot be sharded over "
                       f"{input_context.num_input_pipelines} input pipelines; write more shards")
    ds = ds.shard(input_context.num_input_pipelines, input_context.input_pipeline_id)
  if shuffle_files:
    ds = ds.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)
  if repeat:
    ds = ds.repeat()

  def read(f):
    records = tf.data.TFRecordDataset(f, buffer_size=8 << 20)
    if skip_corrupt:
      records = records.ignore_errors(log_warning=True)
    return records

  return ds.interleave(read, cycle_length=cycle_length, block_length=1,
                       num_parallel_calls=AUTOTUNE, deterministic=True)


def _example_seeds(ds, seed):
  """Pairs each element with a distinct stateless seed [2] derived from (seed, index)."""
  return ds.enumerate().map(lambda i, x: (tf.stack([tf.cast(seed, tf.int64), i]), x))


def train_dataset(file_pattern, batch_size, image_size, tokenize=None, *, input_context=None,
                  seed=0, value_range=(0.0, 1.0), shuffle_buffer=10_000, cycle_length=16,
                  skip_corrupt=False, embedding_dim=None, drop_counter=None, augment=True,
                  crop_fraction=1.0, skip_examples=0):
  """Infinite training batches `{"image": float [b, s, s, 3], "text": tokens or strings}`.

  Args:
    file_pattern: glob(s) of TFRecord shards.
    batch_size: the per-replica batch size (`input_context.get_per_replica_batch_size(...)`).
    image_size: output resolution (Inception crop, then resize).
    tokenize: strings [b] → BERT input dict, run inside the pipeline; None keeps strings.
    input_context: from `distribute_datasets_from_function`: file-level sharding.
    seed: fixes file order, example order, crops and caption choices.
    value_range: output pixel range (towers expect [0, 1]).
    skip_corrupt: skip the rest of a corrupt shard instead of failing.
    embedding_dim: read the pre-computed-embedding schema instead: "image" is the vector.
    drop_counter: a `DropCounter` to count dropped examples.
    augment: Inception crop (True) or the evaluation's central crop (False: deterministic
      images, e.g. to compare with pre-computed embeddings).
    crop_fraction: central crop fraction when `augment` is False.
    skip_examples: start this far into the (deterministic) stream, e.g. `step × batch_size` on
      resume, so that a resumed run sees exactly the examples a straight run would. Skipped
      records are read but not decoded.
  """
  files = list_files(file_pattern)
  ds = _records(files, input_context, seed, True, cycle_length, skip_corrupt, repeat=True)
  ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
  ds = _example_seeds(ds, seed)
  if skip_examples:
    ds = ds.skip(skip_examples)
  counter = drop_counter or DropCounter()

  def prepare(example_seed, record):
    ex = schema.parse(record, embedding_dim)
    crop_seed, text_seed = tf.unstack(tf.random.experimental.stateless_split(
        tf.cast(example_seed, tf.int64), 2))
    text, ok_text = preprocess.sample_text(ex[schema.TEXTS], text_seed)
    if embedding_dim:
      image, ok_image = ex[schema.EMBEDDING], tf.constant(True)
    else:
      image, ok_image = preprocess.decode_image(ex[schema.IMAGE])
      if augment:
        image = preprocess.inception_crop(image, image_size, crop_seed)
      else:
        image = preprocess.central_crop_resize(image, image_size, crop_fraction)
      image = preprocess.to_range(image, value_range)
    return {"image": image, "text": text, "valid_image": ok_image, "valid_text": ok_text}

  ds = ds.map(prepare, num_parallel_calls=AUTOTUNE).filter(counter.keep)
  ds = ds.map(lambda ex: {"image": ex["image"], "text": ex["text"]})
  ds = ds.batch(batch_size, drop_remainder=True)
  if tokenize is not None:
    ds = ds.map(lambda b: {"image": b["image"], "text": tokenize(b["text"])},
                num_parallel_calls=AUTOTUNE)
  return ds.prefetch(AUTOTUNE)


def eval_dataset(file_pattern, batch_size, image_size, *, value_range=(0.0, 1.0),
                 crop_fraction=1.0, skip_corrupt=False, embedding_dim=None, drop_counter=None):
  """One pass over all examples, in file order: central crop/resize, *all* captions kept.

  Yields `{"image", "texts" (string [b, max_captions], "" padded), "num_texts", "label", "id"}`;
  the last batch may be smaller (no example is lost).
  """
  files = list_files(file_pattern)
  ds = _records(files, None, 0, False, 1, skip_corrupt, repeat=False)
  counter = drop_counter or DropCounter()

  def prepare(record):
    ex = schema.parse(record, embedding_dim)
    texts = preprocess.clean_texts(ex[schema.TEXTS])
    if embedding_dim:
      image, ok_image = ex[schema.EMBEDDING], tf.constant(True)
    else:
      image, ok_image = preprocess.decode_image(ex[schema.IMAGE])
      image = preprocess.to_range(preprocess.central_crop_resize(image, image_size,
                                                                 crop_fraction), value_range)
    return {"image": image, "texts": texts, "num_texts": tf.size(texts, out_type=tf.int32),
            "label": ex[schema.LABEL], "id": ex[schema.ID], "valid_image": ok_image,
            "valid_text": tf.size(texts) > 0}

  ds = ds.map(prepare, num_parallel_calls=AUTOTUNE).filter(counter.keep)
  ds = ds.map(lambda ex: {k: v for k, v in ex.items() if not k.startswith("valid_")})
  ds = ds.padded_batch(batch_size, padding_values={
      "image": 0.0, "texts": b"", "num_texts": 0,
      "label": tf.constant(schema.NO_LABEL, tf.int64), "id": b""})
  return ds.prefetch(AUTOTUNE)
