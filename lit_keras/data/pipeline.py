"""tf.data input pipelines for training and evaluation, from TFRecords of `schema`.

Training: file-level sharding by `tf.distribute.InputContext` (for
`strategy.distribute_datasets_from_function`), shuffled files, parallel interleave, example
shuffle, parallel decode with an Inception crop, one caption sampled per image per step,
tokenisation inside the pipeline, `drop_remainder` batches, prefetch. Randomness is stateless per
(seed, example index), so a seed fixes the whole stream.

Bad input never crashes a run or changes a batch's shape: undecodable images and examples without
any non-empty caption are dropped and counted (`DropCounter`). A corrupt TFRecord shard stops the
iteration with TensorFlow's `DataLossError`; the trainer and the evaluators turn it into
`CorruptDataError` naming the file and the byte offset (`raise_corruption`); a record whose
bytes are not an example of the schema, or whose image (of a known format) does not decode, the
file and the record's index. With `skip_corrupt=True` the rest of a corrupt file is skipped with
a logged warning instead, and such records are dropped and counted (`unparsable_record`,
`undecodable_image`; each image is then decoded once more, to check it).
"""
import contextlib
import re

from google.protobuf import message as protobuf_message
import tensorflow as tf

from lit_keras import errors
from lit_keras.data import preprocess
from lit_keras.data import schema
from lit_keras.data import tfds_source

AUTOTUNE = tf.data.AUTOTUNE
DROP_REASONS = ("undecodable_image", "no_caption", "unparsable_record")
UNPARSABLE, UNDECODABLE = 1, 2  # `_problem` codes (0: usable)


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

  def keep_usable(self, code):
    """A `Dataset.filter` predicate on a `_problem` code: keeps usable records (0), counts the
    others as unparsable records or undecodable images."""
    with tf.control_dependencies([
        self._vars["unparsable_record"].assign_add(tf.cast(tf.equal(code, UNPARSABLE), tf.int64)),
        self._vars["undecodable_image"].assign_add(
            tf.cast(tf.equal(code, UNDECODABLE), tf.int64))]):
      return tf.equal(code, 0)

  def counts(self):
    return {r: int(v.numpy()) for r, v in self._vars.items()}


def list_files(file_pattern):
  """The sorted files of a glob, a comma-separated list of globs or a list of globs; a TFDS source
  (`tfds:NAME:SPLIT`) is its own single unit, checked to name a dataset."""
  if tfds_source.is_tfds(file_pattern):
    tfds_source.layout(file_pattern)
    return [file_pattern]
  patterns = ([p for p in file_pattern.split(",") if p] if isinstance(file_pattern, str)
              else list(file_pattern))
  files = sorted(f for p in patterns for f in tf.io.gfile.glob(p))
  if not files:
    raise errors.NoFilesError(f"no TFRecord files match {file_pattern!r}: check the path (and, "
                              "for gs://, the credentials), or build the data first")
  return files


def _problem(record, embedding_dim):
  """(code, why): (0, None) if `record` parses as an example of the schema (`embedding_dim`: the
  pre-computed one) and, in the image schema, its image — if its magic number names a format
  we decode — decodes; else (UNPARSABLE or UNDECODABLE, why). The bytes are checked as a
  protocol buffer first: TensorFlow's own parse error quotes them and cannot even be raised in
  Python when they are not UTF-8."""
  data = record.numpy() if hasattr(record, "numpy") else record
  try:
    tf.train.Example.FromString(data)
  except protobuf_message.DecodeError:
    return UNPARSABLE, "its bytes are not a tf.train.Example"
  try:
    ex = schema.parse(tf.constant(data), embedding_dim)
  except (tf.errors.InvalidArgumentError, UnicodeDecodeError) as e:
    return UNPARSABLE, _clean(getattr(e, "message", None) or type(e).__name__)
  if not embedding_dim and preprocess.image_format(ex[schema.IMAGE]).numpy():
    try:
      preprocess.decode_image(ex[schema.IMAGE])
    except (tf.errors.InvalidArgumentError, UnicodeDecodeError) as e:
      return UNDECODABLE, "its image does not decode: " + _clean(
          getattr(e, "message", None) or type(e).__name__)
  return 0, None


def _problem_code(record, embedding_dim):
  """`_problem`'s code as a scalar int32 tensor (eager, through `tf.py_function`: only used with
  `skip_corrupt`, where a bad record must be dropped and counted instead of stopping the run;
  it decodes each image once more)."""
  code = tf.py_function(lambda r: _problem(r, embedding_dim)[0], [record], tf.int32)
  code.set_shape([])
  return code


def find_corruption(files, embedding_dim=False):
  """Scans shards record by record; returns [(file, error message)] for corrupt ones. With
  `embedding_dim` (None: the image schema; D: the pre-computed one), a record that does not
  parse as an example of that schema, or whose image does not decode, is corrupt too (its index
  is named)."""
  bad = []
  for f in files:
    try:
      for i, record in enumerate(tf.data.TFRecordDataset(f)):
        why = None if embedding_dim is False else _problem(record, embedding_dim)[1]
        if why:
          bad.append((f, f"record {i} is not a usable example: {why}"))
          break
    except (tf.errors.DataLossError, tf.errors.InvalidArgumentError) as e:
      bad.append((f, _clean(e.message)))
  return bad


def _clean(message):
  """TensorFlow's error text without its graph-node prefix and op suffix."""
  message = re.sub(r"\{\{[^}]*\}\}\s*", "", message.split("\n")[0])
  return re.sub(r"\s*\[Op:.*$", "", message).strip()


def raise_corruption(files, error, embedding_dim=False, bad=None):
  """Re-raises a DataLossError (or, with `embedding_dim` given, a parse error) from a multi-file
  pipeline naming the bad file(s): `bad`, `find_corruption`'s result if already computed."""
  bad = find_corruption(files, embedding_dim) if bad is None else bad
  where = "; ".join(f"{f}: {msg}" for f, msg in bad) or f"one of {len(files)} files"
  raise CorruptDataError(
      f"corrupt TFRecord data in {where}. Re-convert the shard, or pass skip_corrupt=True "
      f"(--config.data.skip_corrupt=True) to skip the rest of a corrupt file and drop (and "
      f"count) records that do not parse or decode.") from error


@contextlib.contextmanager
def naming_corruption(file_pattern, embedding_dim=None):
  """Code reading `file_pattern` under this context raises `CorruptDataError` naming the corrupt
  file and offset, instead of TensorFlow's `DataLossError` — or the file and record index of a
  record that is not an example of the schema (`embedding_dim`: None for the image schema, D for
  the pre-computed one) or whose image does not decode, instead of a bare op error."""
  if tfds_source.is_tfds(file_pattern):  # TFDS names its own files
    yield
    return
  try:
    yield
  except tf.errors.DataLossError as e:
    raise_corruption(list_files(file_pattern), e)
  except (tf.errors.InvalidArgumentError, UnicodeDecodeError) as e:
    # A record that does not parse, or an image that does not decode: TensorFlow's message
    # names neither file nor record (and when the record's bytes are not UTF-8, the message
    # itself fails to decode).
    if isinstance(e, UnicodeDecodeError) or re.search(r"ParseExample|Decode[A-Z]|Uncompress",
                                                        e.message):
      files = list_files(file_pattern)
      bad = find_corruption(files, embedding_dim)
      if bad:
        raise_corruption(files, e, embedding_dim, bad)
    raise


def _read(skip_corrupt):
  def read(f):
    records = tf.data.TFRecordDataset(f, buffer_size=8 << 20)
    return records.ignore_errors(log_warning=True) if skip_corrupt else records
  return read


def _parsed(record, embedding_dim):
  """A serialized record parsed (`schema.parse`); an example from a TFDS source as it is."""
  return record if isinstance(record, dict) else schema.parse(record, embedding_dim)


def _checked(example_seed, record, embedding_dim):
  """Parses a record and decides, cheaply (no image decoding), whether it is usable: the image
  bytes have a known format and some caption is non-empty."""
  ex = _parsed(record, embedding_dim)
  texts = preprocess.clean_texts(ex[schema.TEXTS])
  ok_text = tf.reduce_any(tf.strings.length(texts) > 0)
  if embedding_dim:
    ok_image = tf.constant(True)
  else:
    ok_image = tf.reduce_any(tf.equal(preprocess.image_format(ex[schema.IMAGE]),
                                      list(preprocess.IMAGE_FORMATS)))
  return {"seed": example_seed, "example": ex, "valid_image": ok_image, "valid_text": ok_text}


def require_a_usable_example(file_pattern, embedding_dim=None):
  """Raises `errors.NoUsableExampleError` unless some record of the files is usable (parses,
  a known image format or an embedding, a non-empty caption). A training stream repeats its
  files and filters, so on data without a usable example it would wait forever. Reads records
  until the first usable one: usually one."""
  files = list_files(file_pattern)
  if tfds_source.is_tfds(file_pattern):
    for _ in eval_examples(file_pattern).take(1):
      return
    files = []
  for f in files:
    try:
      for record in tf.data.TFRecordDataset(f):
        if _problem(record, embedding_dim)[0]:
          continue
        checked = _checked(0, record, embedding_dim)
        if bool(checked["valid_image"]) and bool(checked["valid_text"]):
          return
    except (tf.errors.DataLossError, tf.errors.InvalidArgumentError):
      continue  # a corrupt shard: the next one may hold a usable example
  raise errors.NoUsableExampleError(
      f"no usable training example in {len(files)} file(s) of {file_pattern!r}: every record "
      "is unparsable, has an image of an unknown format or no caption (lit-keras-validate "
      "says which)")


def _fail_with(x, message):
  with tf.control_dependencies([tf.debugging.Assert(False, [message])]):
    return tf.identity(x)


def stream(files, index, num_streams, stream_batch, prepare, *, seed=0, start_step=0,
           embedding_dim=None, shuffle_buffer=10_000, cycle_length=16, skip_corrupt=False,
           drop_counter=None, epoch_batches=False):
  """Training stream `index` of `num_streams`: its share of the data, shuffled, filtered,
  positioned at `start_step`, prepared and batched (`stream_batch` examples a step).

  A stream depends only on (files, num_streams, index, seed), not on how many replicas or hosts
  read it: files `index::num_streams` (or, with fewer files than streams, every file and records
  `index::num_streams`). Unusable records are dropped (and counted) *before* the position is
  skipped to, and skipped records are parsed but not decoded, so a resumed stream continues
  exactly where the straight one would be.

  By default the data repeats before the example shuffle, so the shuffle buffer mixes epochs
  and a batch can hold an example twice when the buffer is larger than the data. With
  `epoch_batches`, each epoch of the stream is shuffled (within `shuffle_buffer`) and cut into
  batches on its own, its remainder dropped: no batch spans two epochs, none holds an example
  twice, and a batch as large as the stream's usable examples is the whole stream each step.
  """
  counter = drop_counter or DropCounter()
  if tfds_source.is_tfds(files[0]):
    # Part `index` of the split, its files in an order of this stream's seed.
    ds = tfds_source.examples(files[0], shard=(index, num_streams), shuffle_seed=seed + index)
    if not epoch_batches:
      ds = ds.repeat()
  else:
    own = files[index::num_streams] if len(files) >= num_streams else files
    ds = tf.data.Dataset.from_tensor_slices(own)
    ds = ds.shuffle(len(own), seed=seed + index, reshuffle_each_iteration=True)
    if not epoch_batches:
      ds = ds.repeat()
    # At most one open reader per file of the stream: with more readers than files, the
    # repeated file list would put copies of one file side by side, and each record several
    # times in a row.
    ds = ds.interleave(_read(skip_corrupt), cycle_length=min(cycle_length, len(own)),
                       block_length=1, num_parallel_calls=AUTOTUNE, deterministic=True)
    if len(files) < num_streams:
      ds = ds.shard(num_streams, index)
  if skip_corrupt and not tfds_source.is_tfds(files[0]):
    ds = ds.filter(lambda r: counter.keep_usable(_problem_code(r, embedding_dim)))
  if epoch_batches:
    ds = ds.filter(lambda r: counter.keep(_checked(0, r, embedding_dim)))
  ds = ds.shuffle(shuffle_buffer, seed=seed + index, reshuffle_each_iteration=True)
  if epoch_batches:
    ds = ds.batch(stream_batch, drop_remainder=True).repeat()
    # `repeat` ends at once when an epoch yields no batch: say why instead of ending silently.
    ds = ds.concatenate(tf.data.Dataset.from_tensors(tf.fill([stream_batch], "")).map(
        lambda b: _fail_with(b, f"data.epoch_batches: training stream {index} has fewer usable "
                                f"examples than its batch of {stream_batch}, so no batch can be "
                                f"made without repeating one")))
    ds = ds.unbatch()
  # A distinct stateless seed per example: its position in this stream's shuffled order.
  ds = ds.enumerate().map(
      lambda i, r: (tf.stack([tf.cast(seed, tf.int64), i * num_streams + index]), r))
  ds = ds.map(lambda s, r: _checked(s, r, embedding_dim), num_parallel_calls=AUTOTUNE)
  if not epoch_batches:
    ds = ds.filter(counter.keep)
  if start_step:
    ds = ds.skip(start_step * stream_batch)
  ds = ds.map(lambda x: prepare(x["seed"], x["example"]), num_parallel_calls=AUTOTUNE)
  return ds.batch(stream_batch, drop_remainder=True)


def train_dataset(file_pattern, batch_size, image_size, tokenize=None, *, input_context=None,
                  seed=0, value_range=(0.0, 1.0), shuffle_buffer=10_000, cycle_length=16,
                  skip_corrupt=False, embedding_dim=None, drop_counter=None, augment=True,
                  crop_fraction=1.0, num_streams=None, start_step=0, epoch_batches=False):
  """Infinite training batches `{"image": float [b, s, s, 3], "text": tokens or strings}`.

  The data is split into `num_streams` streams (`stream`); with R replicas in all, replica r
  reads streams r·S/R … (r+1)·S/R − 1 and concatenates their batches. The global batch of a step
  is therefore the same on every layout whose replica count divides `num_streams` — one device,
  4 replicas in one process, 2 hosts × 2 — and a resumed run continues each stream where it was.
  With `input_context` (from `distribute_datasets_from_function`) the dataset serves this input
  pipeline's replicas in turn, in the order tf.distribute hands out consecutive elements.

  Args:
    file_pattern: glob(s) of TFRecord shards.
    batch_size: the per-replica batch size (`input_context.get_per_replica_batch_size(...)`).
    image_size: output resolution (Inception crop, then resize).
    tokenize: strings [b] → BERT input dict, run inside the pipeline; None keeps strings.
    input_context: this pipeline's place among the replicas.
    seed: fixes file order, example order, crops and caption choices.
    value_range: output pixel range (towers expect [0, 1]).
    shuffle_buffer: examples shuffled together, over all streams.
    skip_corrupt: skip the rest of a corrupt shard instead of failing.
    embedding_dim: read the pre-computed-embedding schema instead: "image" is the vector.
    drop_counter: a `DropCounter` to count dropped examples.
    augment: Inception crop (True) or the evaluation's central crop (False: deterministic
      images, e.g. to compare with pre-computed embeddings).
    crop_fraction: central crop fraction when `augment` is False.
    num_streams: how many streams the data is split into (default: one per replica); a multiple
      of every replica count you will train with makes their batches identical.
    start_step: position every stream at this training step (resume).
    epoch_batches: no batch spans two epochs of a stream, so none holds an example twice
      (`stream`); the rest of each epoch that does not fill a batch is dropped.
  """
  files = list_files(file_pattern)
  ctx = input_context or tf.distribute.InputContext()
  replicas, pipelines = ctx.num_replicas_in_sync, ctx.num_input_pipelines
  if pipelines > 1 and len(files) < pipelines and not tfds_source.is_tfds(files[0]):
    raise ValueError(f"{len(files)} files cannot be sharded over {pipelines} input pipelines; "
                     "write more shards")
  num_streams = int(num_streams or replicas)
  if num_streams % replicas or batch_size % (num_streams // replicas):
    raise ValueError(f"num_streams={num_streams} must be a multiple of the {replicas} replicas "
                     f"and divide the global batch {batch_size * replicas} evenly")
  per_replica_streams = num_streams // replicas
  stream_batch = batch_size // per_replica_streams
  counter = drop_counter or DropCounter()

  def prepare(example_seed, ex):
    crop_seed, text_seed = tf.unstack(tf.random.experimental.stateless_split(
        tf.cast(example_seed, tf.int64), 2))
    text, _ = preprocess.sample_text(ex[schema.TEXTS], text_seed)
    if embedding_dim:
      image = ex[schema.EMBEDDING]
    else:
      image, _ = preprocess.decode_image(ex[schema.IMAGE])
      if augment:
        image = preprocess.inception_crop(image, image_size, crop_seed)
      else:
        image = preprocess.central_crop_resize(image, image_size, crop_fraction)
      image = preprocess.to_range(image, value_range)
    return {"image": image, "text": text}

  def replica_dataset(replica):
    parts = [stream(files, replica * per_replica_streams + j, num_streams, stream_batch, prepare,
                    seed=seed, start_step=start_step, embedding_dim=embedding_dim,
                    shuffle_buffer=max(shuffle_buffer // num_streams, 1),
                    cycle_length=cycle_length, skip_corrupt=skip_corrupt, drop_counter=counter,
                    epoch_batches=epoch_batches)
             for j in range(per_replica_streams)]
    ds = parts[0] if len(parts) == 1 else tf.data.Dataset.zip(tuple(parts)).map(
        lambda *b: tf.nest.map_structure(lambda *x: tf.concat(x, 0), *b))
    if tokenize is not None:
      ds = ds.map(lambda b: {"image": b["image"], "text": tokenize(b["text"])},
                  num_parallel_calls=AUTOTUNE)
    return ds.prefetch(AUTOTUNE)

  local = replicas // pipelines
  first = ctx.input_pipeline_id * local
  parts = [replica_dataset(first + j) for j in range(local)]
  if local == 1:
    return parts[0]
  # tf.distribute hands this pipeline's consecutive elements to its replicas in turn.
  return tf.data.Dataset.choose_from_datasets(parts, tf.data.Dataset.range(local).repeat())


def eval_examples(file_pattern, *, embedding_dim=None, skip_corrupt=False, drop_counter=None):
  """Every usable example once, in file order, parsed but not decoded: {"image" (the encoded
  bytes, or the pre-computed vector), "texts" (cleaned, all of them), "num_texts", "label",
  "id"}. Examples whose image bytes have no known format or that have no caption are dropped and
  counted, as in `eval_dataset`."""
  files = list_files(file_pattern)
  counter = drop_counter or DropCounter()
  if tfds_source.is_tfds(file_pattern):
    ds = tfds_source.examples(file_pattern)
  else:
    ds = tf.data.Dataset.from_tensor_slices(files).interleave(
        _read(skip_corrupt), cycle_length=1, block_length=1, num_parallel_calls=AUTOTUNE,
        deterministic=True)
    if skip_corrupt:
      ds = ds.filter(lambda r: counter.keep_usable(_problem_code(r, embedding_dim)))

  def parse(record):
    ex = _parsed(record, embedding_dim)
    texts = preprocess.clean_texts(ex[schema.TEXTS])
    if embedding_dim:
      image, ok_image = ex[schema.EMBEDDING], tf.constant(True)
    else:
      image = ex[schema.IMAGE]
      ok_image = tf.reduce_any(tf.equal(preprocess.image_format(image),
                                        list(preprocess.IMAGE_FORMATS)))
    return {"image": image, "texts": texts, "num_texts": tf.size(texts, out_type=tf.int32),
            "label": ex[schema.LABEL], "id": ex[schema.ID], "valid_image": ok_image,
            "valid_text": tf.size(texts) > 0}

  ds = ds.map(parse, num_parallel_calls=AUTOTUNE).filter(counter.keep)
  return ds.map(lambda ex: {k: v for k, v in ex.items() if not k.startswith("valid_")})


def eval_image(data, image_size, crop_fraction=1.0, value_range=(0.0, 1.0)):
  """Encoded bytes → the evaluation view: central crop, resize, value range."""
  image, _ = preprocess.decode_image(data)
  return preprocess.to_range(preprocess.central_crop_resize(image, image_size, crop_fraction),
                             value_range)


def eval_dataset(file_pattern, batch_size, image_size, *, value_range=(0.0, 1.0),
                 crop_fraction=1.0, skip_corrupt=False, embedding_dim=None, drop_counter=None):
  """One pass over all examples, in file order: central crop/resize, *all* captions kept.

  Yields `{"image", "texts" (string [b, max_captions], "" padded), "num_texts", "label", "id"}`;
  the last batch may be smaller (no example is lost).
  """
  ds = eval_examples(file_pattern, embedding_dim=embedding_dim, skip_corrupt=skip_corrupt,
                     drop_counter=drop_counter)
  if not embedding_dim:
    ds = ds.map(lambda ex: dict(ex, image=eval_image(ex["image"], image_size, crop_fraction,
                                                     value_range)),
                num_parallel_calls=AUTOTUNE)
  ds = ds.padded_batch(batch_size, padding_values={
      "image": 0.0, "texts": b"", "num_texts": 0,
      "label": tf.constant(schema.NO_LABEL, tf.int64), "id": b""})
  return ds.prefetch(AUTOTUNE)
