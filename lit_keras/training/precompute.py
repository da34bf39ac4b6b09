"""Pre-compute a locked image tower's embeddings once (LiT's main speed and memory win).

    lit-keras-precompute --handle PATH_OR_URL --image_size 224 --data "data/emoji/google-train-*" \
        [--value_range 0,1] [--cache_dir DIR]

Runs the tower over every image (central crop — the cache holds one deterministic view per
image) and writes the embedding schema, one output shard per input shard, into a directory
keyed by the tower's identity and preprocessing and by the input files, so a cache is reused
across runs and never mixed up. Resumable (finished shards are skipped), with progress.
"""
import argparse
import hashlib
import json
import os
import sys
import time


def _module_stamp(handle):
  """For a local SavedModel, what changes when it is rebuilt (sizes and times of its files)."""
  stamp = []
  for name in ("saved_model.pb", os.path.join("variables", "variables.index")):
    path = os.path.join(handle, name)
    if os.path.exists(path):
      st = os.stat(path)
      stamp.append((name, st.st_size, int(st.st_mtime)))
  return stamp


def cache_key(source, files):
  ident = {"source": source, "module": _module_stamp(source["handle"]),
           "files": [(os.path.basename(f), os.path.getsize(f) if os.path.exists(f) else None)
                     for f in files]}
  return hashlib.sha1(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:16]


def embedder(source):
  """The locked tower of `source` as one traced function: float images [b, s, s, 3] in [0, 1]
  → features [b, D]."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from lit_keras import towers  # pylint: disable=g-import-not-at-top
  tower = towers.HubImageTower(source["handle"], state="L", image_size=source["image_size"],
                               value_range=tuple(source["value_range"]),
                               output_key=source.get("output_key"))
  size = source["image_size"]
  return tf.function(lambda x: tower(x, training=False),
                     input_signature=[tf.TensorSpec([None, size, size, 3], tf.float32)])


def precompute(source, file_pattern, cache_dir, batch_size=64, log=print):
  """Writes embeddings of the images in `file_pattern`; returns (out_dir, dim, count).

  `source`: {"handle", "image_size", "value_range", "output_key", "crop_fraction"} (see
  `builders.image_source`).
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from lit_keras.data import pipeline  # pylint: disable=g-import-not-at-top
  from lit_keras.data import schema  # pylint: disable=g-import-not-at-top
  files = pipeline.list_files(file_pattern)
  out_dir = os.path.join(cache_dir, "embeddings", cache_key(source, files))
  meta_path = os.path.join(out_dir, "meta.json")
  if os.path.exists(meta_path):
    with open(meta_path) as f:
      meta = json.load(f)
    log(f"[precompute] cached: {meta['count']} embeddings (dim {meta['dim']}) in {out_dir}")
    return out_dir, meta["dim"], meta["count"]
  os.makedirs(out_dir, exist_ok=True)
  embed = embedder(source)
  dim, count, t0 = None, 0, time.time()
  for i, f in enumerate(files):
    out = os.path.join(out_dir, f"emb-{i:05d}-of-{len(files):05d}.tfrecord")
    done = out + ".done"
    if os.path.exists(done):
      with open(done) as g:
        d = json.load(g)
      dim, count = d["dim"], count + d["count"]
      continue
    n = 0
    with tf.io.TFRecordWriter(out + ".tmp") as w:
      for b in pipeline.eval_dataset(f, batch_size, source["image_size"],
                                     crop_fraction=source.get("crop_fraction", 1.0)):
        vecs = embed(b["image"]).numpy()
        dim = vecs.shape[1]
        for v, texts, k, ex_id, label in zip(vecs, b["texts"].numpy(), b["num_texts"].numpy(),
                                             b["id"].numpy(), b["label"].numpy()):
          w.write(schema.embedding_example(v, list(texts[:k]), ex_id, int(label)))
          n += 1
    os.replace(out + ".tmp", out)
    with open(done, "w") as g:
      json.dump({"dim": dim, "count": n}, g)
    count += n
    rate = count / max(time.time() - t0, 1e-9)
    log(f"[precompute] shard {i + 1}/{len(files)}: {count} images, {rate:.1f} images/s")
  with open(meta_path + ".tmp", "w") as f:
    json.dump({"source": source, "inputs": files, "dim": dim, "count": count}, f, indent=2)
  os.replace(meta_path + ".tmp", meta_path)
  log(f"[precompute] done: {count} embeddings (dim {dim}) in {out_dir} "
      f"({time.time() - t0:.0f}s)")
  return out_dir, dim, count


def main(argv=None):
  os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  from lit_keras.convert import pretrained  # pylint: disable=g-import-not-at-top
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--handle", required=True)
  p.add_argument("--image_size", type=int, required=True)
  p.add_argument("--value_range", default="0,1")
  p.add_argument("--output_key", default=None)
  p.add_argument("--crop_fraction", type=float, default=1.0)
  p.add_argument("--data", required=True)
  p.add_argument("--cache_dir", default=None)
  p.add_argument("--batch_size", type=int, default=64)
  a = p.parse_args(argv)
  source = {"handle": a.handle, "image_size": a.image_size,
            "value_range": [float(v) for v in a.value_range.split(",")],
            "output_key": a.output_key, "crop": "central", "crop_fraction": a.crop_fraction}
  out, _, _ = precompute(source, a.data, a.cache_dir or pretrained.default_cache_dir(),
                         a.batch_size)
  print(out)
  return 0


if __name__ == "__main__":
  sys.exit(main())
