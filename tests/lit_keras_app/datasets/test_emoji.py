"""Emoji builders (Google style and 3D) on a small synthetic package of the real layout (the
real build is `slow`)."""
import json
import os

import numpy as np
from PIL import Image
import pytest

from lit_keras.data import pipeline
from lit_keras_app.datasets import emoji
from lit_keras_app.datasets import emoji_3d
from lit_keras_app.datasets import npm

ENTRIES = [("1F600", "GRINNING FACE", ["grinning"], "face-smiling"),
           ("1F415", "DOG", ["dog"], "animal-mammal"),
           ("1F408", "CAT", ["cat"], "animal-mammal"),
           ("2764-FE0F", "RED HEART", ["heart"], "heart"),
           ("1F3C4-200D-2640-FE0F", "WOMAN SURFING", ["woman-surfing"], "person-sport"),
           ("0023-FE0F-20E3", "HASH KEY", ["hash"], "keycap"),
           ("1F34E", "RED APPLE", ["apple"], "food-fruit"),
           ("1F34C", "BANANA", ["banana"], "food-fruit"),
           ("1F697", "AUTOMOBILE", ["car"], "transport-ground"),
           ("1F6B2", "BICYCLE", ["bike"], "transport-ground")]


@pytest.fixture
def packages(tmp_path):
  google = tmp_path / "google" / "package"
  fluent = tmp_path / "fluent" / "package" / "assets"
  (google / "img" / "google" / "64").mkdir(parents=True)
  fluent.mkdir(parents=True)
  entries = []
  rng = np.random.default_rng(0)
  for i, (u, name, short, sub) in enumerate(ENTRIES):
    entries.append({"unified": u, "name": name, "short_names": short, "category": "X",
                    "subcategory": sub, "has_img_google": True})
    img = Image.fromarray(rng.integers(0, 255, (8, 8, 4), dtype=np.uint8))
    img.save(google / "img" / "google" / "64" / f"{u.lower()}.png")
    if i % 3 != 2:  # a third has no 3D version; the others use the naming variants
      name3d = u.lower() if i % 2 else "-".join(p for p in u.lower().split("-") if p != "fe0f")
      img.convert("RGB").save(fluent / f"{name3d}.webp")
  entries.append({"unified": "1F1FF", "name": "NO IMAGE", "short_names": [], "category": "X",
                  "subcategory": "x", "has_img_google": False})
  with open(google / "emoji.json", "w") as f:
    json.dump(entries, f)
  return str(google), str(fluent.parent)


def test_captions_and_split(packages):
  concepts = emoji.load_google(packages[0])
  assert len(concepts) == 10  # the entry without a Google image is left out
  surfer = next(c for c in concepts if c["name"] == "woman surfing")
  assert emoji.captions(surfer) == ["woman surfing", "woman surfing (person sport)"]
  train, held = emoji.concept_split(concepts)
  assert len(held) == 2 and not train & held and len(train | held) == 10
  assert emoji.concept_split(concepts) == (train, held)  # deterministic
  found = emoji_3d.fluent_3d_images(packages[1], concepts)
  assert len(found) == 7 and "2764-fe0f" in found and "1f3c4-200d-2640-fe0f" in found


def test_build_writes_splits(packages, tmp_path):
  out = str(tmp_path / "out")
  summary = emoji.build(out, str(tmp_path / "cache"), packages[0], num_shards=1, workers=1)
  summary.update(emoji_3d.build(str(tmp_path / "out3d"), str(tmp_path / "cache"), *packages,
                                num_shards=1, workers=1))
  assert summary["google-train"]["written"] == 8 and summary["google-heldout"]["written"] == 2
  assert summary["3d-train"]["written"] + summary["3d-heldout"]["written"] == 7
  subcats = open(os.path.join(out, "subcategories.txt")).read().split()
  held = set(json.load(open(os.path.join(out, "split.json")))["heldout"])
  batch = next(iter(pipeline.eval_dataset(os.path.join(out, "google-heldout-*"), 10, 16)))
  assert {i.decode() for i in batch["id"].numpy()} == held
  for texts, n, label in zip(batch["texts"].numpy(), batch["num_texts"].numpy(),
                             batch["label"].numpy()):
    assert texts[n - 1].decode().endswith(f"({subcats[label].replace('-', ' ')})")


def test_missing_npm_says_what_to_install(tmp_path, monkeypatch):
  monkeypatch.setattr(npm.shutil, "which", lambda _: None)
  with pytest.raises(npm.SourceMissingError, match="apt-get install"):
    npm.fetch("emoji-datasource-google", "16.0.0", str(tmp_path))


@pytest.mark.slow
def test_real_emoji_build(tmp_path):
  """Fetches the real packages with `npm pack` (the npm registry) and builds all splits."""
  summary = emoji.build(str(tmp_path / "emoji"), str(tmp_path / "cache"))
  summary.update(emoji_3d.build(str(tmp_path / "emoji_3d"), str(tmp_path / "cache")))
  assert summary["google-train"]["written"] + summary["google-heldout"]["written"] == 1911
  assert summary["google-heldout"]["written"] == 382
  assert summary["3d-train"]["written"] + summary["3d-heldout"]["written"] > 1800
