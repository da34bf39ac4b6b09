"""Pre-computed image embeddings: on 4 replicas the same files as on one device (each image
embedded once, by one replica), equal to the locked tower run directly; cached and resumable."""
import io
import json
import os
import shutil

import numpy as np
from PIL import Image
import tensorflow as tf

from lit_keras import towers
from lit_keras.data import embeddings
from lit_keras.data import pipeline
from lit_keras.data import schema
from lit_keras.training import task as task_lib


def _png(rng):
  buf = io.BytesIO()
  Image.fromarray(rng.integers(0, 255, (20, 24, 3), dtype=np.uint8)).save(buf, format="PNG")
  return buf.getvalue()


def _set(tmp_path):
  rng = np.random.default_rng(0)
  for f in range(2):
    with tf.io.TFRecordWriter(str(tmp_path / f"set-{f}.tfrecord")) as w:
      for i in range(9):
        data = b"broken" if i == 4 else _png(rng)  # dropped: no image format
        w.write(schema.image_example(data, [f"caption {f} {i}", "second"], f"{f}/{i}", i % 3))
  return str(tmp_path / "set-*.tfrecord")


def _read(out_dir, dim):
  ds = pipeline.eval_dataset(embeddings.pattern(out_dir), 64, 0, embedding_dim=dim)
  rows = [(i.decode(), int(l), v) for b in ds
          for i, l, v in zip(b["id"].numpy(), b["label"].numpy(), b["image"].numpy())]
  return [r[0] for r in rows], [r[1] for r in rows], np.stack([r[2] for r in rows])


def test_four_replicas_write_what_one_device_writes(tmp_path, image_module, mirrored_strategy):
  files = _set(tmp_path)
  source = embeddings.image_source(image_module, 16)
  one_dir, dim, count = embeddings.precompute(task_lib.image_file_embedder(source, batch_size=4),
                                              source, files, str(tmp_path / "one"))
  four_dir, dim4, count4 = embeddings.precompute(
      task_lib.image_file_embedder(source, mirrored_strategy, batch_size=2), source, files,
      str(tmp_path / "four"))
  assert (dim, count) == (dim4, count4) == (16, 16)  # 18 records, 2 without an image
  ids, labels, vecs = _read(one_dir, dim)
  ids4, labels4, vecs4 = _read(four_dir, dim)
  assert ids == ids4 == [f"{f}/{i}" for f in range(2) for i in range(9) if i != 4]
  assert labels == labels4
  np.testing.assert_allclose(vecs4, vecs, atol=1e-6)
  # The tower itself on the central crops (its own path, no pipeline of ours beyond decoding).
  tower = towers.HubImageTower(image_module, image_size=16)
  images = np.stack([b["image"].numpy() for b in pipeline.eval_dataset(files, 1, 16)])[:, 0]
  np.testing.assert_allclose(vecs, tower(images).numpy(), atol=1e-5)
  # Cached: a second call computes nothing and returns the same directory.
  again = embeddings.precompute(lambda f: 1 / 0, source, files, str(tmp_path / "one"))
  assert again == (one_dir, dim, count)
  meta = json.load(open(os.path.join(one_dir, "meta.json")))
  assert meta["count"] == 16 and meta["source"] == source


def test_fewshot_during_training_reads_precomputed_features_equal_to_the_images(tmp_path):
  """With pre-computed embeddings, a few-shot evaluator's test and training sets are both
  pre-computed, and its probes equal those evaluate.py computes from the images."""
  from lit_keras.evaluation import evaluators  # pylint: disable=g-import-not-at-top
  from tests import runs  # pylint: disable=g-import-not-at-top
  task = runs.prepare(runs.config(str(tmp_path / "cache"), **{"precompute.enabled": True}))
  spec = task.config.evals.test_fewshot
  assert spec.precomputed.endswith("emb-*.tfrecord") and spec.precomputed_train.endswith(
      "emb-*.tfrecord") and spec.precomputed != spec.precomputed_train
  dim = task.config.precompute.dim
  fast, full = task.build_model(precomputed=True), task.build_model(precomputed=False)
  for m in (fast, full):
    m.image_head(tf.zeros([1, dim]))
  full.image_head.set_weights(fast.image_head.get_weights())
  pick = lambda evs: [e for e in evs if e.name == "test_fewshot"]
  during = evaluators.evaluate(pick(task.build_evaluators(during_training=True)), fast)
  after = evaluators.evaluate(pick(task.build_evaluators()), full)
  assert during["test_fewshot"]["data"] == spec.precomputed
  metrics = [k for k in after["test_fewshot"] if k.endswith("shot")]
  assert len(metrics) == 6
  for k in metrics:
    assert during["test_fewshot"][k] == after["test_fewshot"][k], k


def test_a_set_sharing_files_with_a_computed_set_copies_their_shards(tmp_path, image_module):
  """A subset or superset of a computed set (one data source left out or added) computes only
  the files it has not seen; a file that changed is computed again."""
  files = _set(tmp_path)
  source = embeddings.image_source(image_module, 16)
  embedder = task_lib.image_file_embedder(source, batch_size=4)
  calls = []

  def embed(fs):
    calls.append([os.path.basename(f) for f in fs])
    return embedder(fs)

  cache_dir = str(tmp_path / "cache")
  both_dir, dim, count = embeddings.precompute(embed, source, files, cache_dir)
  assert calls == [["set-0.tfrecord", "set-1.tfrecord"]] and count == 16  # one pass
  # A cache written before the index existed joins it when it is next used.
  shutil.rmtree(os.path.join(cache_dir, "embeddings", embeddings.FILES))
  assert embeddings.precompute(lambda f: 1 / 0, source, files, cache_dir)[0] == both_dir
  # The second file alone: copied, equal to the tower run directly on its images.
  second = str(tmp_path / "set-1.tfrecord")
  one_dir, dim1, count1 = embeddings.precompute(lambda f: 1 / 0, source, second, cache_dir)
  assert one_dir != both_dir and (dim1, count1) == (16, 8)
  ids, labels, vecs = _read(one_dir, dim)
  assert ids == [f"1/{i}" for i in range(9) if i != 4] and labels == [
      i % 3 for i in range(9) if i != 4]
  tower = towers.HubImageTower(image_module, image_size=16)
  images = np.stack([b["image"].numpy() for b in pipeline.eval_dataset(second, 1, 16)])[:, 0]
  np.testing.assert_allclose(vecs, tower(images).numpy(), atol=1e-5)
  assert json.load(open(os.path.join(one_dir, "meta.json")))["count"] == 8
  # A superset: only the new file is computed.
  rng = np.random.default_rng(1)
  with tf.io.TFRecordWriter(str(tmp_path / "set-2.tfrecord")) as w:
    for i in range(3):
      w.write(schema.image_example(_png(rng), [f"new {i}"], f"2/{i}", 0))
  calls.clear()
  _, _, count3 = embeddings.precompute(embed, source, files, cache_dir)
  assert calls == [["set-2.tfrecord"]] and count3 == 19
  # A file rewritten (another size) is not taken from the index.
  with tf.io.TFRecordWriter(second) as w:
    w.write(schema.image_example(_png(rng), ["rewritten"], "1/0", 0))
  calls.clear()
  _, _, count4 = embeddings.precompute(embed, source, second, cache_dir)
  assert calls == [["set-1.tfrecord"]] and count4 == 1


def test_files_are_embedded_in_passes_and_each_vector_lands_in_its_own_shard(tmp_path,
                                                                              monkeypatch):
  """Consecutive files to compute share one pass (at most FILES_PER_PASS of them); a file
  already computed for another set is copied and splits the passes; every example's vector is
  written beside its own id."""
  rng = np.random.default_rng(2)
  sizes = [3, 1, 4, 2, 5]
  for f, n in enumerate(sizes):
    with tf.io.TFRecordWriter(str(tmp_path / f"s-{f}.tfrecord")) as w:
      for i in range(n):
        w.write(schema.image_example(_png(rng), [f"c {f} {i}"], f"{f}/{i}", 0))
  source = embeddings.image_source("no/such/module", 16)
  calls = []

  def embed(fs):  # each example's vector names it: [file, position, 1]
    calls.append([os.path.basename(f) for f in fs])
    return [np.array([[int(f[-10]), i, 1.0] for i in range(n)], np.float32)
            for f, n in zip(fs, (sizes[int(f[-10])] for f in fs))]

  monkeypatch.setattr(embeddings, "FILES_PER_PASS", 2)
  cache_dir = str(tmp_path / "cache")
  embeddings.precompute(embed, source, str(tmp_path / "s-2.tfrecord"), cache_dir)
  calls.clear()
  out_dir, dim, count = embeddings.precompute(embed, source, str(tmp_path / "s-*.tfrecord"),
                                              cache_dir)
  # s-2 is copied from the first call; the rest in passes of at most two consecutive files.
  assert calls == [["s-0.tfrecord", "s-1.tfrecord"], ["s-3.tfrecord", "s-4.tfrecord"]]
  assert (dim, count) == (3, sum(sizes))
  ids, _, vecs = _read(out_dir, dim)
  assert ids == [f"{f}/{i}" for f, n in enumerate(sizes) for i in range(n)]
  np.testing.assert_array_equal(vecs, [[f, i, 1.0] for f, n in enumerate(sizes)
                                       for i in range(n)])
