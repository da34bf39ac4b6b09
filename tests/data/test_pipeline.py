"""Schema, pipelines and bad input: every input gives a fixed-shape example or a counted drop."""
import io
import os

import numpy as np
from PIL import Image
import pytest
import tensorflow as tf

from lit_keras import towers
from lit_keras.data import pipeline
from lit_keras.data import preprocess
from lit_keras.data import schema
from lit_keras.data import validate


def _encode(im, fmt, **kw):
  buf = io.BytesIO()
  im.save(buf, format=fmt, **kw)
  return buf.getvalue()


def bad_and_odd_images():
  rng = np.random.default_rng(0)
  rgb = Image.fromarray(rng.integers(0, 255, (20, 30, 3), dtype=np.uint8))
  rgba = np.zeros((16, 16, 4), np.uint8)
  rgba[..., 0] = 255  # red where opaque
  rgba[:8, :, 3] = 255  # top half opaque, bottom transparent
  frames = [Image.fromarray(np.full((10, 10, 3), c, np.uint8)) for c in (0, 255)]
  gif = io.BytesIO()
  frames[0].save(gif, format="GIF", save_all=True, append_images=frames[1:], duration=100)
  return {
      "jpeg": (_encode(rgb, "JPEG"), True),
      "rgba_png": (_encode(Image.fromarray(rgba), "PNG"), True),
      "gray_png": (_encode(rgb.convert("L"), "PNG"), True),
      "palette_png": (_encode(rgb.convert("P"), "PNG"), True),
      "animated_gif": (gif.getvalue(), True),
      "one_pixel": (_encode(Image.new("RGB", (1, 1), (0, 128, 255)), "PNG"), True),
      "bmp": (_encode(rgb, "BMP"), True),
      "zero_bytes": (b"", False),
      "random_bytes": (rng.integers(0, 255, 500, dtype=np.uint8).tobytes(), False),
      "webp": (_encode(rgb, "WEBP"), False),  # the converter re-encodes WebP as PNG
  }


def test_decode_every_kind_of_image():
  for name, (data, expect_ok) in bad_and_odd_images().items():
    image, ok = preprocess.decode_image(tf.constant(data))
    assert bool(ok) == expect_ok, name
    assert image.shape[-1] == 3 and image.dtype == tf.float32, name
    assert 0.0 <= float(tf.reduce_min(image)) and float(tf.reduce_max(image)) <= 1.0, name
  # Pixel values against PIL's own decoding (lossless formats: exact; a GIF: its first frame).
  images = bad_and_odd_images()
  rgb = np.asarray(Image.open(io.BytesIO(images["bmp"][0])).convert("RGB"))
  want = {
      "bmp": rgb,
      "gray_png": np.repeat(np.asarray(Image.fromarray(rgb).convert("L"))[..., None], 3, -1),
      "palette_png": np.asarray(Image.open(io.BytesIO(images["palette_png"][0])).convert("RGB")),
      "animated_gif": np.zeros((10, 10, 3), np.uint8),
      "one_pixel": np.array([[[0, 128, 255]]], np.uint8),
  }
  for name, pixels in want.items():
    image, _ = preprocess.decode_image(tf.constant(images[name][0]))
    np.testing.assert_allclose(image.numpy(), pixels / 255.0, atol=1e-6, err_msg=name)
  jpeg, _ = preprocess.decode_image(tf.constant(images["jpeg"][0]))
  pil_jpeg = np.asarray(Image.open(io.BytesIO(images["jpeg"][0])).convert("RGB")) / 255.0
  # Two JPEG decoders (TensorFlow's default fast IDCT, PIL's): a few levels apart at most.
  diff = np.abs(jpeg.numpy() - pil_jpeg)
  assert diff.max() <= 4 / 255 and diff.mean() < 1 / 255
  rgba, _ = preprocess.decode_image(tf.constant(bad_and_odd_images()["rgba_png"][0]))
  np.testing.assert_allclose(rgba[0, 0], [1, 0, 0], atol=1e-6)  # opaque red stays red
  np.testing.assert_allclose(rgba[-1, 0], [1, 1, 1], atol=1e-6)  # transparent → white


def _write(path, examples):
  with tf.io.TFRecordWriter(str(path)) as w:
    for ex in examples:
      w.write(ex)
  return str(path)


def test_texts_cleaning_and_sampling():
  texts = tf.constant([b"", b"  a \xff cat  ", b"\t"])
  cleaned = preprocess.clean_texts(texts).numpy().tolist()
  assert cleaned == [b"", "a \ufffd cat".encode(), b""]
  for s in range(5):
    text, ok = preprocess.sample_text(texts, tf.constant([s, 1], tf.int64))
    assert bool(ok) and text.numpy() == "a \ufffd cat".encode()
  _, ok = preprocess.sample_text(tf.constant(["", " "]), tf.constant([0, 0], tf.int64))
  assert not bool(ok)


@pytest.fixture
def messy_shards(tmp_path):
  images = bad_and_odd_images()
  good = images["jpeg"][0]
  examples = []
  for i, (name, (data, _)) in enumerate(images.items()):
    examples.append(schema.image_example(data, [f"a photo number {i}", "second caption"],
                                         name, label=i))
  examples += [
      schema.image_example(good, [""], "empty_caption_only"),
      schema.image_example(good, [b"invalid \xff\xfe utf8"], "bad_utf8"),
      schema.image_example(good, [" ".join(["word"] * 10_000)], "long_caption", label=3),
  ]
  half = len(examples) // 2
  return [_write(tmp_path / "a.tfrecord", examples[:half]),
          _write(tmp_path / "b.tfrecord", examples[half:])]


def test_train_pipeline_fixed_shapes_and_counted_drops(messy_shards, vocab_file):
  tok = towers.WordPieceTokenizer(vocab_file, seq_length=16)
  counter = pipeline.DropCounter()
  ds = pipeline.train_dataset(messy_shards, batch_size=4, image_size=32, tokenize=tok, seed=1,
                              shuffle_buffer=4, cycle_length=2, drop_counter=counter)
  batches = list(ds.take(6))
  for b in batches:
    assert b["image"].shape == (4, 32, 32, 3)
    assert b["text"]["input_word_ids"].shape == (4, 16)
  counts = counter.counts()
  # 3 bad images (zero bytes, random bytes, WebP) and 1 caption-less example per epoch; 24
  # examples need several epochs, so each was met at least once. (The counts are a snapshot:
  # the prefetching pipeline may be part-way through a further epoch when they are read.)
  assert counts["undecodable_image"] >= 3
  assert counts["no_caption"] >= 1


def test_train_pipeline_is_deterministic_per_seed(messy_shards):
  def first(seed):
    ds = pipeline.train_dataset(messy_shards, batch_size=3, image_size=16, seed=seed,
                                shuffle_buffer=4, cycle_length=2)
    return next(iter(ds))
  a, b, c = first(3), first(3), first(4)
  np.testing.assert_array_equal(a["image"], b["image"])
  assert a["text"].numpy().tolist() == b["text"].numpy().tolist()
  assert not np.array_equal(a["image"], c["image"])


def test_eval_pipeline_keeps_all_captions(messy_shards):
  counter = pipeline.DropCounter()
  ds = pipeline.eval_dataset(messy_shards, batch_size=5, image_size=24, drop_counter=counter)
  ids, n_texts = [], []
  for b in ds:
    assert b["image"].shape[1:] == (24, 24, 3)
    assert b["texts"].shape[0] == b["image"].shape[0]
    ids += [x.decode() for x in b["id"].numpy()]
    n_texts += b["num_texts"].numpy().tolist()
  assert "zero_bytes" not in ids and "random_bytes" not in ids and "webp" not in ids
  assert "empty_caption_only" in ids and "long_caption" in ids  # eval keeps them (1 caption)
  assert counter.counts()["undecodable_image"] == 3
  assert n_texts[ids.index("jpeg")] == 2


def test_distributed_file_sharding(messy_shards, tmp_path, mirrored_strategy):
  """4 files, 4 replicas in 2 input pipelines (one stream per replica, one file per stream):
  pipeline 0 reads only files 0 and 1, pipeline 1 only files 2 and 3."""
  del mirrored_strategy
  jpeg = bad_and_odd_images()["jpeg"][0]
  files = [_write(tmp_path / f"f{f}.tfrecord",
                  [schema.image_example(jpeg, [f"file {f} item {i}"], f"{f}-{i}") for i in range(3)])
           for f in range(4)]
  for pid in (0, 1):
    ctx = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=pid,
                                     num_replicas_in_sync=4)
    ds = pipeline.train_dataset(files, batch_size=ctx.get_per_replica_batch_size(8),
                                image_size=8, input_context=ctx, seed=0, shuffle_buffer=2)
    batches = list(ds.take(12))
    assert all(b["image"].shape == (2, 8, 8, 3) for b in batches)
    seen = {t.decode() for b in batches for t in b["text"].numpy()}
    assert seen == {f"file {f} item {i}" for f in (2 * pid, 2 * pid + 1) for i in range(3)}
  too_many = tf.distribute.InputContext(num_input_pipelines=3, input_pipeline_id=0)
  with pytest.raises(ValueError, match="cannot be sharded"):
    pipeline.train_dataset(messy_shards, 2, 8, input_context=too_many)


def _corrupt(path):
  data = bytearray(open(path, "rb").read())
  data[40] ^= 0xFF  # inside the first record's payload: its CRC no longer matches
  open(path, "wb").write(bytes(data))


def test_corrupt_shard_fails_naming_the_file_or_is_skipped(messy_shards):
  _corrupt(messy_shards[1])
  ds = pipeline.eval_dataset(messy_shards, batch_size=4, image_size=8)
  with pytest.raises(tf.errors.DataLossError):
    list(ds)
  with pytest.raises(pipeline.CorruptDataError, match=os.path.basename(messy_shards[1])):
    try:
      list(ds)
    except tf.errors.DataLossError as e:
      pipeline.raise_corruption(messy_shards, e)
  skipped = pipeline.eval_dataset(messy_shards, batch_size=4, image_size=8, skip_corrupt=True)
  ids = [x.decode() for b in skipped for x in b["id"].numpy()]
  # a.tfrecord's 6 records survive; b.tfrecord is unreadable from its corrupt first record on.
  assert ids == ["jpeg", "rgba_png", "gray_png", "palette_png", "animated_gif", "one_pixel"]
  report = validate.validate(messy_shards)
  assert report["corrupt"] and report["corrupt"][0]["file"] == messy_shards[1]
  assert report["corrupt"][0]["offset"] is not None


def test_precomputed_embedding_schema(tmp_path):
  rng = np.random.default_rng(0)
  vecs = rng.normal(size=(6, 5)).astype(np.float32)
  path = _write(tmp_path / "emb.tfrecord", [schema.embedding_example(v, [f"t{i}", "u"], str(i), i)
                                            for i, v in enumerate(vecs)])
  ds = pipeline.train_dataset(path, batch_size=3, image_size=0, embedding_dim=5, seed=0,
                              shuffle_buffer=1)
  b = next(iter(ds))
  assert b["image"].shape == (3, 5)
  got = pipeline.eval_dataset(path, batch_size=6, image_size=0, embedding_dim=5)
  np.testing.assert_allclose(next(iter(got))["image"], vecs)
  assert validate.validate([path], embedding_dim=5)["records"] == 6


def test_inception_crop_and_central_crop_shapes():
  img = tf.random.uniform([40, 60, 3])
  crop = preprocess.inception_crop(img, 32, tf.constant([1, 2], tf.int64))
  assert crop.shape == (32, 32, 3)
  center = preprocess.central_crop_resize(img, 20)
  assert center.shape == (20, 20, 3)
  np.testing.assert_allclose(preprocess.to_range(tf.ones([1]), (-1.0, 1.0)), [1.0])


def test_truncated_shard_is_reported_with_its_file(messy_shards):
  data = open(messy_shards[0], "rb").read()
  open(messy_shards[0], "wb").write(data[:-10])  # a shard cut off mid-record (e.g. a failed copy)
  ds = pipeline.eval_dataset(messy_shards, batch_size=4, image_size=8)
  with pytest.raises(pipeline.CorruptDataError, match=os.path.basename(messy_shards[0])):
    try:
      list(ds)
    except tf.errors.DataLossError as e:
      pipeline.raise_corruption(messy_shards, e)
  report = validate.validate(messy_shards)
  assert [c["file"] for c in report["corrupt"]] == [messy_shards[0]]
  skipped = pipeline.eval_dataset(messy_shards, batch_size=4, image_size=8, skip_corrupt=True)
  ids = [x.decode() for b in skipped for x in b["id"].numpy()]
  # a.tfrecord loses its last, cut-off record (one_pixel); b.tfrecord's decodable ones all stay.
  assert ids == ["jpeg", "rgba_png", "gray_png", "palette_png", "animated_gif", "bmp",
                 "empty_caption_only", "bad_utf8", "long_caption"]


def _global_batches(files, layout, steps, start_step=0, num_streams=4, global_batch=8):
  """The global batches of `steps` steps as the replicas of `layout` = (replicas, pipelines) see
  them: each pipeline's consecutive elements go to its replicas in turn (tf.distribute's order),
  replicas in id order make the global batch."""
  replicas, pipelines = layout
  iters = []
  for p in range(pipelines):
    ctx = tf.distribute.InputContext(num_input_pipelines=pipelines, input_pipeline_id=p,
                                     num_replicas_in_sync=replicas)
    ds = pipeline.train_dataset(files, ctx.get_per_replica_batch_size(global_batch), 8,
                                input_context=ctx, seed=7, shuffle_buffer=8, cycle_length=2,
                                num_streams=num_streams, start_step=start_step)
    iters.append(iter(ds))
  out = []
  for _ in range(steps):
    parts = [next(it) for it in iters for _ in range(replicas // pipelines)]
    out.append({"image": np.concatenate([b["image"] for b in parts]),
                "text": sum((b["text"].numpy().tolist() for b in parts), [])})
  return out


def test_every_layout_sees_the_same_global_batches_and_resumes_exactly(messy_shards):
  """One device, 2 and 4 replicas, 1 or 2 input pipelines: identical global batches (the data
  is split into 4 streams); started at step 3, each layout continues exactly — although the
  shards hold records the pipeline drops (bad images, an empty caption)."""
  straight = _global_batches(messy_shards, (1, 1), steps=6)
  texts = [t for b in straight for t in b["text"]]
  assert len(set(texts)) > 8  # real, varied examples, not padding
  for layout in [(4, 1), (4, 2), (2, 2), (2, 1)]:
    got = _global_batches(messy_shards, layout, steps=6)
    for a, b in zip(straight, got):
      np.testing.assert_array_equal(a["image"], b["image"], err_msg=str(layout))
      assert a["text"] == b["text"], layout
  for layout in [(1, 1), (4, 2)]:
    resumed = _global_batches(messy_shards, layout, steps=3, start_step=3)
    for a, b in zip(straight[3:], resumed):
      np.testing.assert_array_equal(a["image"], b["image"], err_msg=str(layout))
      assert a["text"] == b["text"], layout


def test_streams_must_fit_the_replicas(messy_shards):
  ctx = tf.distribute.InputContext(num_input_pipelines=1, input_pipeline_id=0,
                                   num_replicas_in_sync=4)
  with pytest.raises(ValueError, match="multiple of the 4 replicas"):
    pipeline.train_dataset(messy_shards, 2, 8, input_context=ctx, num_streams=6)


@pytest.fixture
def numbered_shards(tmp_path):
  """23 usable examples with one caption each ("example i") and 3 the pipeline drops, over 2
  shards."""
  buf = io.BytesIO()
  Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(buf, format="PNG")
  png = buf.getvalue()
  examples = [schema.image_example(png, [f"example {i}"], f"ex{i}") for i in range(23)]
  examples += [schema.image_example(b"not an image", ["dropped"], "bad"),
               schema.image_example(png, [""], "no_caption"),
               schema.image_example(b"", ["dropped too"], "empty")]
  order = np.random.default_rng(0).permutation(len(examples))
  examples = [examples[i] for i in order]
  return [_write(tmp_path / "a.tfrecord", examples[:13]),
          _write(tmp_path / "b.tfrecord", examples[13:])]


def _caption_batches(files, batch, steps, start_step=0, **kw):
  ds = pipeline.train_dataset(files, batch, 8, seed=3, shuffle_buffer=100, cycle_length=2,
                              start_step=start_step, **kw)
  return [b["text"].numpy().tolist() for b in ds.take(steps)]


def test_epoch_batches_never_repeat_an_example_in_a_batch(numbered_shards):
  """epoch_batches: 23 usable examples in batches of 5 → 4 batches an epoch, 20 distinct
  examples, the 3 left over dropped; epochs reshuffled; a resumed stream continues exactly. A
  batch of 23 is the whole data every step. The default (the shuffle buffer mixes epochs) does
  put an example twice in a batch with this data."""
  usable = {f"example {i}".encode() for i in range(23)}
  batches = _caption_batches(numbered_shards, 5, 12, epoch_batches=True)
  for b in batches:
    assert len(set(b)) == 5 and set(b) <= usable, b
  epochs = [sum(batches[e * 4:(e + 1) * 4], []) for e in range(3)]
  for e in epochs:
    assert len(set(e)) == 20, e
  assert epochs[0] != epochs[1] and epochs[1] != epochs[2]  # reshuffled every epoch
  assert _caption_batches(numbered_shards, 5, 6, start_step=6, epoch_batches=True) == batches[6:]
  for b in _caption_batches(numbered_shards, 23, 3, epoch_batches=True):
    assert sorted(b) == sorted(usable)
  mixed = _caption_batches(numbered_shards, 5, 12)
  assert any(len(set(b)) < 5 for b in mixed)
  with pytest.raises(tf.errors.InvalidArgumentError,
                     match="fewer usable examples than its batch of 24"):
    _caption_batches(numbered_shards, 24, 1, epoch_batches=True)


def _fuzz_records(tmp_path, iterations, seed):
  """Seeded mutants of a 7-record shard through the evaluation and training pipelines: one
  record's tf.train.Example bytes mutated (written with a valid CRC), or the shard's raw bytes
  mutated (the CRC catches it). Returns the outcomes seen."""
  jpeg = bad_and_odd_images()["jpeg"][0]
  records = [schema.image_example(jpeg, [f"caption {i}"], f"id{i}") for i in range(7)]
  rng = np.random.default_rng(seed)
  outcomes = set()
  for it in range(iterations):
    path = tmp_path / f"m{it}.tfrecord"
    if it % 2 == 0:  # a mutated example, valid framing
      victim = int(rng.integers(7))
      buf = bytearray(records[victim])
      for _ in range(int(rng.integers(1, 4))):
        buf[int(rng.integers(len(buf)))] = int(rng.integers(256))
      _write(path, records[:victim] + [bytes(buf)] + records[victim + 1:])
    else:  # mutated framing: a flipped byte anywhere in the shard
      _write(path, records)
      data = bytearray(path.read_bytes())
      data[int(rng.integers(len(data)))] ^= 1 << int(rng.integers(8))
      path.write_bytes(bytes(data))
    files = [str(path)]
    # Without skip_corrupt: whole batches of fixed shape, or CorruptDataError naming the file.
    try:
      with pipeline.naming_corruption(files):
        batches = list(pipeline.eval_dataset(files, batch_size=4, image_size=8))
      assert all(b["image"].shape[1:] == (8, 8, 3) for b in batches)
      outcomes.add("read")
    except pipeline.CorruptDataError as e:
      assert str(path) in str(e)
      outcomes.add("named")
    # With skip_corrupt: never an error; every record kept or counted once (one pass).
    counter = pipeline.DropCounter()
    kept = sum(int(b["image"].shape[0]) for b in pipeline.eval_dataset(
        files, batch_size=4, image_size=8, skip_corrupt=True, drop_counter=counter))
    readable = sum(1 for _ in tf.data.TFRecordDataset(files).ignore_errors())
    assert kept + sum(counter.counts().values()) == readable, (it, kept, counter.counts())
    train = pipeline.train_dataset(files, batch_size=2, image_size=8, seed=0, shuffle_buffer=1,
                                   skip_corrupt=True)
    if kept:  # (a training stream with no usable example at all never yields)
      assert all(b["image"].shape == (2, 8, 8, 3) for b in train.take(3))
    # The training pipeline without skip_corrupt: batches of fixed shape, or the file named.
    try:
      with pipeline.naming_corruption(files):
        strict = pipeline.train_dataset(files, batch_size=2, image_size=8, seed=0,
                                        shuffle_buffer=1)
        assert all(b["image"].shape == (2, 8, 8, 3) for b in strict.take(3))
    except pipeline.CorruptDataError as e:
      assert str(path) in str(e)
  return outcomes


def test_fuzzed_shards_and_examples_are_named_or_dropped_and_counted(tmp_path):
  assert _fuzz_records(tmp_path, 12, seed=0) == {"read", "named"}


@pytest.mark.slow
def test_fuzzed_shards_and_examples_long_run(tmp_path):
  assert _fuzz_records(tmp_path, 300, seed=1) == {"read", "named"}
