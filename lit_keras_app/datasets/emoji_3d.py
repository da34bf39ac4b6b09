"""The same emoji concepts drawn in 3D: an evaluation set for style shift (from npm).

`@lobehub/fluent-emoji-3d@1.1.0` (MIT): 256×256 WebP drawings (re-encoded to PNG) of about 1,850
of the Google-style concepts, with the same captions, labels (the 99 subcategories) and **concept
split** as `emoji`: `train` holds the training concepts in the 3D style, `heldout` the held-out
ones — retrieval and zero-shot under a style the image tower never saw during LiT training.
"""
import json
import os

import tensorflow as tf

from lit_keras_app.datasets import base
from lit_keras_app.datasets import emoji
from lit_keras_app.datasets import npm

FLUENT_3D = ("@lobehub/fluent-emoji-3d", "1.1.0")


def fluent_3d_images(package_dir, concepts):
  """Maps concept code points to the 3D WebP file of the same emoji, where one exists."""
  assets = os.path.join(package_dir, "assets")
  files = {f.lower(): os.path.join(assets, f) for f in os.listdir(assets)
           if f.endswith(".webp")}

  def candidates(u):
    parts = u.split("-")
    yield u
    yield "-".join(p for p in parts if p != "fe0f")
    yield "-".join(p.zfill(4) for p in parts)
    yield u.replace("_", "-")

  found = {}
  for c in concepts:
    for cand in candidates(c["unified"]):
      if cand + ".webp" in files:
        found[c["unified"]] = files[cand + ".webp"]
        break
  return found


def build(out_dir, cache_dir, google_dir=None, fluent_dir=None, num_shards=4, workers=None):
  """Writes the 3D-style TFRecords (`3d-train`, `3d-heldout`) into `out_dir`; returns a summary."""
  google_dir = google_dir or emoji.fetch_google(cache_dir)
  fluent_dir = fluent_dir or npm.fetch(*FLUENT_3D, cache_dir,
                                       members=lambda n: n.endswith(".webp"))
  concepts = emoji.load_google(google_dir)
  train, held = emoji.concept_split(concepts)
  tf.io.gfile.makedirs(out_dir)
  label = emoji.write_subcategories(concepts, out_dir)
  images = fluent_3d_images(fluent_dir, concepts)
  summary = {}
  for split, ids in (("train", train), ("heldout", held)):
    rows = [{"image_path": images[c["unified"]], "texts": emoji.captions(c),
             "label": label[c["subcategory"]], "id": c["unified"], "where": c["unified"]}
            for c in concepts if c["unified"] in ids and c["unified"] in images]
    summary[f"3d-{split}"] = emoji.write_split(rows, out_dir, f"3d-{split}", num_shards, workers)
  with tf.io.gfile.GFile(os.path.join(out_dir, "summary.json"), "w") as f:
    json.dump(summary, f, indent=2)
  return summary


class Emoji3D(base.Dataset):
  name = "emoji_3d"
  done_file = "summary.json"
  splits = {"train": "3d-train-*.tfrecord", "heldout": "3d-heldout-*.tfrecord"}
  templates = emoji.TEMPLATES

  def build(self, data_dir, cache_dir):
    build(data_dir, cache_dir)

  def class_names(self, data_dir):
    return emoji.subcategories(data_dir)


base.register(Emoji3D())
