"""Pre-computed image embeddings: run a locked image tower once, train from its features.

LiT's main speed and memory win: with a locked image tower, the image features are the same at
every step, so they are computed once (central crop: the cache holds one deterministic view per
image) and training needs neither the images nor the image model. `precompute` writes the
embedding schema (`lit_keras.data.schema`), one output shard per input shard, into
`<cache>/embeddings/<key>/`, where the key hashes the tower's identity and preprocessing
(`source`) and the input files, so a cache is reused across runs and never mixed up. An input file
already embedded for another set by the same tower (a subset or superset of a computed set, e.g.
one data source left out) is copied, not computed again: `<cache>/embeddings/files/` indexes
every finished shard by its tower and input file. Resumable (finished shards are skipped), with
progress; every file goes through `tf.io.gfile`.
"""
import hashlib
import json
import os
import time

import numpy as np
import tensorflow as tf

from lit_keras.data import pipeline
from lit_keras.data import schema
from lit_keras.data import tfds_source

META = "meta.json"
FILES = "files"  # the index of finished shards by (tower + preprocessing, input file)
# Input files embedded in one pass of the tower (one input pipeline, no restart between files;
# the same vectors as file by file); a kill loses at most one pass.
FILES_PER_PASS = 8


def _module_stamp(handle):
  """For a local SavedModel, what changes when it is rebuilt (sizes and times of its files)."""
  stamp = []
  for name in ("saved_model.pb", os.path.join("variables", "variables.index")):
    path = os.path.join(handle, name)
    if "://" not in handle and tf.io.gfile.exists(path):
      st = tf.io.gfile.stat(path)
      stamp.append((name, st.length, int(st.mtime_nsec // 1_000_000_000)))
  return stamp


def cache_key(source, files):
  """16 hex digits identifying (tower + preprocessing, input files)."""
  ident = {"source": source, "module": _module_stamp(source["handle"]),
           "files": [_file_stamp(f) for f in files]}
  return hashlib.sha1(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:16]


def _reusable(index, source, f):
  """A finished shard holding the embeddings of input file `f` by this tower, or None."""
  entry = os.path.join(index, cache_key(source, [f]) + ".json")
  if not tf.io.gfile.exists(entry):
    return None
  shard = _read_json(entry)["shard"]
  done = tf.io.gfile.exists(shard) and tf.io.gfile.exists(shard + ".done")
  return shard if done else None


def _add_to_index(index, source, f, shard):
  """Records that finished `shard` holds the embeddings of input file `f` (if not yet known)."""
  entry = os.path.join(index, cache_key(source, [f]) + ".json")
  if not tf.io.gfile.exists(entry):
    tf.io.gfile.makedirs(index)
    _write_json(entry, {"shard": shard})


def _file_stamp(f):
  """A TFRecord file's name and size; a TFDS source's name and version."""
  if tfds_source.is_tfds(f):
    return (f, str(tfds_source.builder(f).info.version))
  return (os.path.basename(f), tf.io.gfile.stat(f).length if tf.io.gfile.exists(f) else None)


def image_source(handle, image_size, value_range=(0.0, 1.0), output_key=None, crop_fraction=1.0):
  """What identifies a locked image tower's features: the module and its preprocessing (the
  images are central crops of `crop_fraction` of the short side, resized to `image_size`)."""
  return {"handle": handle, "image_size": int(image_size),
          "value_range": [float(v) for v in value_range], "output_key": output_key or None,
          "crop": "central", "crop_fraction": float(crop_fraction)}


def _read_json(path):
  with tf.io.gfile.GFile(path, "r") as f:
    return json.load(f)


def _write_json(path, obj):
  """Writes through a temporary name and renames: a reader never sees half a file."""
  with tf.io.gfile.GFile(path + ".tmp", "w") as f:
    json.dump(obj, f, indent=2)
  tf.io.gfile.rename(path + ".tmp", path, overwrite=True)


def cached(source, file_pattern, cache_dir):
  """(out_dir, meta dict or None): where `precompute` writes, and what is there if finished."""
  files = pipeline.list_files(file_pattern)
  out_dir = os.path.join(cache_dir, "embeddings", cache_key(source, files))
  meta = os.path.join(out_dir, META)
  return out_dir, (_read_json(meta) if tf.io.gfile.exists(meta) else None)


def pattern(out_dir):
  """The glob of the embedding shards in `out_dir`."""
  return os.path.join(out_dir, "emb-*.tfrecord")


def _passes(files, compute):
  """The files to compute, in runs of consecutive ones of at most FILES_PER_PASS (a TFDS source
  alone)."""
  runs = []
  for i in (i for i, c in enumerate(compute) if c):
    last = runs[-1] if runs else []
    if (last and last[-1] == i - 1 and len(last) < FILES_PER_PASS
        and not any(tfds_source.is_tfds(files[j]) for j in (i, last[-1]))):
      last.append(i)
    else:
      runs.append([i])
  return runs


def precompute(embed_files, source, file_pattern, cache_dir, log=print, writer=True):
  """Writes the embeddings of the images in `file_pattern`; returns (out_dir, dim, count).

  Args:
    embed_files: a list of TFRecord files → their images' features, one float [n, D] per file,
      in the order of `pipeline.eval_examples`, computed in one pass (the locked tower over
      central crops; on many hosts, every host calls it and the work is shared, e.g. by
      `lit_keras.evaluation.sharded_map`). Called with up to FILES_PER_PASS files at a time.
    source: what identifies the tower and its preprocessing (`image_source`).
    file_pattern: image–text TFRecords.
    cache_dir: the cache root.
    writer: whether this host writes the files (the chief); the others only compute.
  """
  files = pipeline.list_files(file_pattern)
  out_dir, meta = cached(source, files, cache_dir)
  index = os.path.join(cache_dir, "embeddings", FILES)
  if meta is not None:
    if writer:  # caches written before the index existed join it
      for i, f in enumerate(files):
        _add_to_index(index, source, f, _shard(out_dir, i, len(files)))
    log(f"[precompute] cached: {meta['count']} embeddings (dim {meta['dim']}) in {out_dir}")
    return out_dir, meta["dim"], meta["count"]
  if writer:
    tf.io.gfile.makedirs(out_dir)
  # Decided once, before any host writes: every host then runs the same shards (a shard's
  # marker can only appear after all hosts took part in computing it).
  todo = [not tf.io.gfile.exists(_shard(out_dir, i, len(files)) + ".done")
          for i in range(len(files))]
  reuse = [_reusable(index, source, f) if todo[i] else None for i, f in enumerate(files)]
  dim, count, t0 = None, 0, time.time()
  compute = [t and not r for t, r in zip(todo, reuse)]
  first_of_pass = {run[0]: run for run in _passes(files, compute)}
  computed = {}
  for i, f in enumerate(files):
    out = _shard(out_dir, i, len(files))
    if not todo[i] or reuse[i]:
      d = _read_json((reuse[i] or out) + ".done")
      if reuse[i] and writer:
        tf.io.gfile.copy(reuse[i], out + ".tmp", overwrite=True)
        tf.io.gfile.rename(out + ".tmp", out, overwrite=True)
        _write_json(out + ".done", d)
      if reuse[i]:
        log(f"[precompute] shard {i + 1}/{len(files)}: {d['count']} embeddings of "
            f"{os.path.basename(f)} copied from {reuse[i]}")
      dim, count = d["dim"], count + d["count"]
      continue
    if i in first_of_pass:
      run = first_of_pass[i]
      computed = dict(zip(run, embed_files([files[j] for j in run]), strict=True))
    vecs = np.asarray(computed.pop(i))
    if len(vecs):
      dim = int(vecs.shape[1])
    if writer:
      n = 0
      with tf.io.TFRecordWriter(out + ".tmp") as w:
        for ex in pipeline.eval_examples(f).ragged_batch(256):
          for texts, ex_id, label in zip(ex["texts"].to_list(), ex["id"].numpy(),
                                         ex["label"].numpy()):
            w.write(schema.embedding_example(vecs[n], texts, ex_id, int(label)))
            n += 1
      if n != len(vecs):
        raise RuntimeError(f"{f}: {n} examples but {len(vecs)} embeddings")
      tf.io.gfile.rename(out + ".tmp", out, overwrite=True)
      _write_json(out + ".done", {"dim": dim, "count": n})
      _add_to_index(index, source, f, out)
    count += len(vecs)
    rate = count / max(time.time() - t0, 1e-9)
    log(f"[precompute] shard {i + 1}/{len(files)}: {count} images, {rate:.1f} images/s")
  if writer:
    _write_json(os.path.join(out_dir, META),
                {"source": source, "inputs": files, "dim": dim, "count": count})
  log(f"[precompute] done: {count} embeddings (dim {dim}) in {out_dir} "
      f"({time.time() - t0:.0f}s)")
  return out_dir, dim, count


def _shard(out_dir, index, num_files):
  return os.path.join(out_dir, f"emb-{index:05d}-of-{num_files:05d}.tfrecord")
