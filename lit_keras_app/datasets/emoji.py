"""Google-style emoji as an image–text set, from npm (real drawings, real names; no network at run
time beyond the npm registry through `npm pack`).

`emoji-datasource-google@16.0.0` (emoji.json MIT, images Apache-2.0): 1,911 base emoji (skin-tone
variants left out), 64×64 RGBA PNGs. Captions: the name, each short name, and "name
(subcategory)". A deterministic **concept split** holds out 20% of the concepts (seeded
permutation of the sorted code points), so zero-shot on unseen concepts can be measured; the
`emoji_3d` and `emoji_multilingual` datasets use the same split. Labels are subcategory indices
(99 classes, `subcategories.txt`). Splits: `train`, `heldout`.
"""
import json
import os

import numpy as np
import tensorflow as tf

from lit_keras.data import records
from lit_keras_app.datasets import base
from lit_keras_app.datasets import npm

GOOGLE = ("emoji-datasource-google", "16.0.0")
HELDOUT_FRACTION = 0.2
SPLIT_SEED = 0
TEMPLATES = ("{}", "an emoji of {}.", "a picture of {}.")


def google_member(name):
  return name == "package/emoji.json" or (name.startswith("package/img/google/64/")
                                          and name.endswith(".png"))


def load_google(package_dir):
  """The base Google-style emoji: list of concept dicts, sorted by code point."""
  with open(os.path.join(package_dir, "emoji.json"), encoding="utf-8") as f:
    entries = json.load(f)
  concepts = []
  for e in entries:
    if not e.get("has_img_google"):
      continue
    unified = e["unified"].lower()
    path = os.path.join(package_dir, "img", "google", "64", f"{unified}.png")
    name = (e.get("name") or e["short_name"]).lower()
    concepts.append({"unified": unified, "name": name, "short_names": e.get("short_names", []),
                     "category": e["category"], "subcategory": e["subcategory"],
                     "image_path": path})
  return sorted(concepts, key=lambda c: c["unified"])


def captions(concept):
  """Name, short names and "name (subcategory)", de-duplicated, in that order."""
  sub = concept["subcategory"].replace("-", " ")
  texts = [concept["name"]] + [s.replace("_", " ").replace("-", " ")
                               for s in concept["short_names"]]
  texts.append(f"{concept['name']} ({sub})")
  seen, out = set(), []
  for t in texts:
    if t and t not in seen:
      seen.add(t)
      out.append(t)
  return out


def concept_split(concepts, heldout_fraction=HELDOUT_FRACTION, seed=SPLIT_SEED):
  """Deterministic split of concept ids: (train set, held-out set)."""
  ids = sorted(c["unified"] for c in concepts)
  order = np.random.default_rng(seed).permutation(len(ids))
  n_held = int(round(len(ids) * heldout_fraction))
  held = {ids[i] for i in order[:n_held]}
  return set(ids) - held, held


def fetch_google(cache_dir):
  """The unpacked `emoji-datasource-google` package (emoji.json and the 64-px PNGs)."""
  return npm.fetch(*GOOGLE, cache_dir, members=google_member)


def write_split(rows, out_dir, prefix, num_shards, workers):
  """Writes `rows` as `<prefix>-*.tfrecord`; returns the summary entry."""
  report = records.convert(rows, out_dir, prefix, num_shards, workers)
  print(f"[emoji] {prefix}: {report['written']} examples, {report['rejected']} rejected",
        flush=True)
  return {"written": report["written"], "rejected": report["rejected"]}


def write_subcategories(concepts, out_dir):
  """Writes `subcategories.txt` (label order) and returns {subcategory: label}."""
  names = sorted({c["subcategory"] for c in concepts})
  with tf.io.gfile.GFile(os.path.join(out_dir, "subcategories.txt"), "w") as f:
    f.write("\n".join(names) + "\n")
  return {s: i for i, s in enumerate(names)}


def build(out_dir, cache_dir, google_dir=None, num_shards=4, workers=None):
  """Writes the Google-style emoji TFRecords and metadata into `out_dir`; returns a summary."""
  google_dir = google_dir or fetch_google(cache_dir)
  concepts = load_google(google_dir)
  train, held = concept_split(concepts)
  tf.io.gfile.makedirs(out_dir)
  label = write_subcategories(concepts, out_dir)
  with tf.io.gfile.GFile(os.path.join(out_dir, "split.json"), "w") as f:
    json.dump({"train": sorted(train), "heldout": sorted(held), "seed": SPLIT_SEED,
               "heldout_fraction": HELDOUT_FRACTION}, f, indent=1)
  summary = {}
  for split, ids in (("train", train), ("heldout", held)):
    rows = [{"image_path": c["image_path"], "texts": captions(c),
             "label": label[c["subcategory"]], "id": c["unified"], "where": c["unified"]}
            for c in concepts if c["unified"] in ids]
    summary[f"google-{split}"] = write_split(rows, out_dir, f"google-{split}", num_shards,
                                             workers)
  with tf.io.gfile.GFile(os.path.join(out_dir, "summary.json"), "w") as f:
    json.dump(summary, f, indent=2)
  return summary


def subcategories(data_dir):
  """The class names of the emoji labels (subcategories, '-' → ' '), in label order."""
  with tf.io.gfile.GFile(os.path.join(data_dir, "subcategories.txt"), "r") as f:
    return [line.strip().replace("-", " ") for line in f if line.strip()]


class GoogleEmoji(base.Dataset):
  name = "emoji"
  done_file = "summary.json"
  splits = {"train": "google-train-*.tfrecord", "heldout": "google-heldout-*.tfrecord"}
  templates = TEMPLATES

  def build(self, data_dir, cache_dir):
    build(data_dir, cache_dir)

  def class_names(self, data_dir):
    return subcategories(data_dir)


base.register(GoogleEmoji())
