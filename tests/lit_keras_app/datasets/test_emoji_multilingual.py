"""Multilingual emoji captions (CLDR layout, synthetic subset), SentencePiece, fixed shapes."""
import json
import os

import numpy as np
import pytest

from lit_keras import towers
from lit_keras.data import pipeline
from lit_keras_app.datasets import emoji
from lit_keras_app.datasets import emoji_multilingual as em
from lit_keras_app.datasets import npm
from tests.lit_keras_app.datasets.test_emoji import ENTRIES
from tests.lit_keras_app.datasets.test_emoji import packages  # noqa: F401  (fixture)

NAMES = {  # language → (name of the first emoji, keywords)
    "en": ("grinning face", ["face", "grin"]), "ja": ("にっこり笑う", ["顔", "笑顔"]),
    "ar": ("وجه مبتسم", ["وجه"]), "th": ("หน้ายิ้มยิงฟัน", ["ยิ้ม"]),
    "ru": ("широко улыбается", ["лицо"]), "zh": ("嘿嘿", ["笑"]), "hi": ("मुस्कुराता चेहरा", ["चेहरा"]),
}


@pytest.fixture
def cldr(tmp_path):
  full, derived = tmp_path / "full" / "package", tmp_path / "derived" / "package"
  for lang, (name, kws) in NAMES.items():
    base = {}
    for i, (u, *_rest) in enumerate(ENTRIES):
      chars = em.emoji_chars(u)
      base[chars] = {"tts": [f"{name} {i}"], "default": kws + [f"k{i}"]}
    half = dict(list(base.items())[:5]), dict(list(base.items())[5:])
    os.makedirs(full / "annotations" / lang)
    os.makedirs(derived / "annotationsDerived" / lang)
    with open(full / "annotations" / lang / "annotations.json", "w", encoding="utf-8") as f:
      json.dump({"annotations": {"identity": {}, "annotations": half[0]}}, f, ensure_ascii=False)
    with open(derived / "annotationsDerived" / lang / "annotations.json", "w",
              encoding="utf-8") as f:
      json.dump({"annotationsDerived": {"annotations": half[1]}}, f, ensure_ascii=False)
  return str(full), str(derived)


def test_annotations_and_captions(cldr):
  notes = em.load_annotations(*cldr, "ja")
  assert len(notes) == len(ENTRIES)  # base and derived files merged
  assert em.emoji_chars("2764-FE0F") == "\u2764"  # U+FE0F stripped, CLDR's key convention
  name, kws = notes[em.emoji_chars("1F600")]
  assert name == "にっこり笑う 0"
  assert em.captions(name, kws) == ["にっこり笑う 0", "にっこり笑う 0 (顔, 笑顔, k0)"]
  with pytest.raises(ValueError, match="no CLDR annotations"):
    em.load_annotations(*cldr, "xx")


def test_build_keeps_the_concept_split_and_fixed_shapes(packages, cldr, tmp_path,  # noqa: F811
                                                         monkeypatch):
  fetched = {em.CLDR[0]: os.path.dirname(cldr[0]) + "/package",
             em.CLDR_DERIVED[0]: os.path.dirname(cldr[1]) + "/package"}
  monkeypatch.setattr(npm, "fetch", lambda name, *a, **k: fetched[name])
  out = str(tmp_path / "ml")
  summary = em.build(out, str(tmp_path), languages=tuple(NAMES), google_dir=packages[0],
                     num_shards=1, workers=1)
  _, held = emoji.concept_split(emoji.load_google(packages[0]))
  heldout = json.load(open(os.path.join(out, "heldout.json"), encoding="utf-8"))
  assert set(heldout["ids"]) == held and summary["heldout_coverage"]["th"] == len(held)
  assert summary["multi-train"] == summary["en-train"] == len(ENTRIES) - len(held)
  texts = [t for b in pipeline.eval_dataset(os.path.join(out, "multi-train-*.tfrecord"), 64, 8)
           for row, k in zip(b["texts"].numpy(), b["num_texts"].numpy()) for t in row[:k]]
  assert len(texts) == summary["multi-train"] * len(NAMES) * 2
  sp = em.train_sentencepiece([t.decode() for t in texts] * 3, str(tmp_path / "sp"),
                              vocab_size=80)
  tok = towers.SentencePieceTokenizer(sp, seq_length=12)
  ds = pipeline.train_dataset(os.path.join(out, "multi-train-*.tfrecord"), 4, 16, tok,
                              seed=0, shuffle_buffer=8)
  for b in ds.take(5):  # captions of every language and script, one fixed shape
    assert b["image"].shape == (4, 16, 16, 3) and b["text"]["input_word_ids"].shape == (4, 12)
  for lang, (name, _) in NAMES.items():
    ids = tok([name])["input_word_ids"].numpy()[0]
    assert ids[0] == 2 and 3 in ids and not np.all(ids[1:] == 0), lang
