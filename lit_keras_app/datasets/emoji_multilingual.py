"""Multilingual emoji captions from the Unicode CLDR annotations (npm `cldr-annotations-full` and
`cldr-annotations-derived-full` 48.2.0, Unicode-3.0): for each language, the emoji's short name
("tts") and keywords. Same Google-style images and the **same concept split** as `emoji`, so
held-out concepts stay held out in every language.

Written into `out_dir`:
- `multi-train-*.tfrecord`: one example per training concept, captions in every language (two per
  language: the name, and "name (keyword, keyword, keyword)"); the training sampler draws one.
- `en-train-*.tfrecord`: the same images with the English CLDR captions only (the baseline).
- `heldout-*.tfrecord`: the held-out concepts' images (label = index in `heldout.json`).
- `heldout.json`: per language, each held-out concept's captions (absent where CLDR has none).
"""
import json
import os

import sentencepiece as spm
import tensorflow as tf

from lit_keras.data import records
from lit_keras_app.datasets import base
from lit_keras_app.datasets import emoji
from lit_keras_app.datasets import npm

CLDR = ("cldr-annotations-full", "48.2.0")
CLDR_DERIVED = ("cldr-annotations-derived-full", "48.2.0")
# 13 languages, 10 scripts: Latin, Cyrillic, Greek, Arabic, Hebrew, Devanagari, Thai, Japanese
# (kana + kanji), Chinese (Han), Korean (Hangul). Thai, Japanese and Chinese write without spaces.
LANGUAGES = ("en", "de", "fr", "es", "ru", "el", "ar", "he", "hi", "th", "ja", "zh", "ko")


def emoji_chars(unified):
  """'1F3C4-200D-2640-FE0F' → the emoji string without U+FE0F (CLDR's key convention)."""
  return "".join(chr(int(h, 16)) for h in unified.split("-") if h.upper() != "FE0F")


def load_annotations(full_dir, derived_dir, lang):
  """chars → (name, keywords) for one language, derived entries overridden by the base file."""
  out = {}
  for path, key in ((os.path.join(derived_dir, "annotationsDerived", lang, "annotations.json"),
                     "annotationsDerived"),
                    (os.path.join(full_dir, "annotations", lang, "annotations.json"),
                     "annotations")):
    if not os.path.exists(path):
      continue
    with open(path, encoding="utf-8") as f:
      entries = json.load(f)[key]["annotations"]
    for chars, v in entries.items():
      if v.get("tts"):
        out[chars.replace("\ufe0f", "")] = (v["tts"][0], list(v.get("default", [])))
  if not out:
    raise ValueError(f"no CLDR annotations for language {lang!r}")
  return out


def captions(name, keywords):
  extra = [k for k in keywords if k != name][:3]
  return [name] + ([f"{name} ({', '.join(extra)})"] if extra else [])


def build(out_dir, cache_dir, languages=LANGUAGES, google_dir=None, num_shards=4, workers=None):
  """Builds the multilingual sets; returns a summary (examples and caption coverage)."""
  google_dir = google_dir or emoji.fetch_google(cache_dir)
  full = npm.fetch(*CLDR, cache_dir, members=lambda n: n.endswith("annotations.json"))
  derived = npm.fetch(*CLDR_DERIVED, cache_dir, members=lambda n: n.endswith("annotations.json"))
  concepts = emoji.load_google(google_dir)
  train, held = emoji.concept_split(concepts)
  notes = {lang: load_annotations(full, derived, lang) for lang in languages}
  by_id = {c["unified"]: c for c in concepts}

  def texts(u, langs):
    out = []
    for lang in langs:
      entry = notes[lang].get(emoji_chars(u))
      if entry:
        out += captions(*entry)
    return out

  tf.io.gfile.makedirs(out_dir)
  summary = {"languages": list(languages)}
  for prefix, langs, ids in (("multi-train", languages, train), ("en-train", ("en",), train)):
    rows = [{"image_path": by_id[u]["image_path"], "texts": texts(u, langs), "label": None,
             "id": u, "where": u} for u in sorted(ids)]
    report = records.convert(rows, out_dir, prefix, num_shards, workers)
    summary[prefix] = report["written"]
  held_ids = sorted(held)
  rows = [{"image_path": by_id[u]["image_path"], "texts": [by_id[u]["name"]], "label": i,
           "id": u, "where": u} for i, u in enumerate(held_ids)]
  summary["heldout"] = records.convert(rows, out_dir, "heldout", 1, 1)["written"]
  per_lang = {lang: {u: captions(*notes[lang][emoji_chars(u)]) for u in held_ids
                     if emoji_chars(u) in notes[lang]} for lang in languages}
  with tf.io.gfile.GFile(os.path.join(out_dir, "heldout.json"), "w") as f:
    json.dump({"ids": held_ids, "captions": per_lang}, f, ensure_ascii=False, indent=1)
  summary["heldout_coverage"] = {lang: len(v) for lang, v in per_lang.items()}
  with tf.io.gfile.GFile(os.path.join(out_dir, "summary.json"), "w") as f:
    json.dump(summary, f, indent=2)
  return summary


def train_sentencepiece(texts, model_prefix, vocab_size=8000):
  """A SentencePiece unigram model for `SentencePieceTokenizer` (pad 0, unk 1, bos 2, eos 3);
  full character coverage so every script's characters get pieces."""
  spm.SentencePieceTrainer.train(
      sentence_iterator=iter(texts), model_prefix=model_prefix, vocab_size=vocab_size,
      pad_id=0, unk_id=1, bos_id=2, eos_id=3, character_coverage=1.0, model_type="unigram",
      minloglevel=2)
  return model_prefix + ".model"


class MultilingualEmoji(base.Dataset):
  name = "emoji_multilingual"
  done_file = "summary.json"
  splits = {"multi-train": "multi-train-*.tfrecord", "en-train": "en-train-*.tfrecord",
            "heldout": "heldout-*.tfrecord"}

  def build(self, data_dir, cache_dir):
    build(data_dir, cache_dir)


base.register(MultilingualEmoji())
