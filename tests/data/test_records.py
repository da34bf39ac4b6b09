"""Writing TFRecords from manifests and class folders, checked by the validator."""
import csv
import io
import json
import os

import numpy as np
from PIL import Image
import pytest
import tensorflow as tf

from lit_keras.data import pipeline
from lit_keras.data import records
from lit_keras.data import schema
from lit_keras.data import validate


def _images(root, n):
  os.makedirs(root, exist_ok=True)
  rng = np.random.default_rng(0)
  names = []
  for i in range(n):
    name = f"img{i}.{'webp' if i == 0 else 'png'}"
    Image.fromarray(rng.integers(0, 255, (12, 12, 3), dtype=np.uint8)).save(
        os.path.join(root, name))
    names.append(name)
  with open(os.path.join(root, "broken.png"), "wb") as f:
    f.write(b"\x89PNG not really")
  return names


def test_manifest_conversion_with_rejections(tmp_path):
  names = _images(tmp_path / "imgs", 10)
  manifest = tmp_path / "pairs.csv"
  with open(manifest, "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["path", "title", "tags", "label"])
    for i, n in enumerate(names):
      w.writerow([f"imgs/{n}", f"title {i}", f"tag a|tag b{i}", i % 3])
    w.writerow(["imgs/missing.png", "gone", "", 0])
    w.writerow(["imgs/broken.png", "broken", "", 0])
    w.writerow(["imgs/img1.png", "", "", 0])   # duplicate id
    w.writerow(["", "no image", "", 0])
    w.writerow(["imgs/img2.png", "bad label", "", "x"])
  rows, rejected = records.read_manifest(str(manifest), "path", ["title", "tags"], "label",
                                         caption_separator="|")
  out = tmp_path / "out"
  report = records.convert(rows, str(out), "train", num_shards=3, workers=1,
                           pre_rejected=rejected, quiet=True)
  assert report["written"] == 10
  assert report["rejected_by_reason"] == {"missing file": 1, "unreadable image": 1,
                                          "duplicate id 'imgs/img1.png'": 1,
                                          "no 'path' value": 1,
                                          "label 'x' is not an integer": 1}
  files = sorted(str(p) for p in out.glob("train-*-of-00003.tfrecord"))
  assert len(files) == 3 and not list(out.glob("*.tmp*"))
  v = validate.validate(files)
  assert v["records"] == 10 and v["decodable"] == 10 and v["corrupt"] == []
  assert v["captions_per_record"] == 3.0  # title + 2 tags
  # WebP was re-encoded as PNG; deterministic shard assignment by id.
  ds = pipeline.eval_dataset(files, 20, 12)
  batch = next(iter(ds))
  ids = [x.decode() for x in batch["id"].numpy()]
  assert "imgs/img0.webp" in ids
  for f in files:
    idx = int(os.path.basename(f).split("-")[1])
    for rec in tf.data.TFRecordDataset(f):
      ex_id = schema.parse(rec)[schema.ID].numpy().decode()
      assert records.shard_of(ex_id, 3) == idx


def test_resumable_and_jsonl(tmp_path):
  names = _images(tmp_path, 6)
  manifest = tmp_path / "pairs.jsonl"
  with open(manifest, "w") as f:
    for i, n in enumerate(names):
      f.write(json.dumps({"image": n, "captions": [f"c{i}", f"d{i}"], "id": f"k{i}"}) + "\n")
    f.write("{not json\n")
  rows, rejected = records.read_manifest(str(manifest), "image", ["captions"], id_column="id")
  assert len(rows) == 6 and len(rejected) == 1 and "unreadable row" in rejected[0][1]
  out = str(tmp_path / "out")
  first = records.convert(rows, out, "x", num_shards=2, workers=1, quiet=True)
  mtimes = {p: os.path.getmtime(os.path.join(out, p)) for p in os.listdir(out)
            if p.endswith(".tfrecord")}
  again = records.convert(rows, out, "x", num_shards=2, workers=1, quiet=True)
  assert again["shards_skipped_as_done"] == 2 and again["written"] == first["written"] == 6
  assert all(os.path.getmtime(os.path.join(out, p)) == t for p, t in mtimes.items())


def test_class_folders_parallel(tmp_path):
  for cls in ("golden_retriever", "tabby-cat"):
    _images(tmp_path / "tree" / cls, 3)
  rows, classes = records.read_folders(str(tmp_path / "tree"))
  assert classes == ["golden_retriever", "tabby-cat"]
  report = records.convert(rows, str(tmp_path / "out"), "f", num_shards=2, workers=2,
                           quiet=True)
  assert report["written"] == 6 and report["rejected_by_reason"] == {"unreadable image": 2}
  ds = pipeline.eval_dataset(str(tmp_path / "out" / "f-*.tfrecord"), 10, 8)
  b = next(iter(ds))
  texts = {t.decode() for t in b["texts"][:, 0].numpy()}
  assert texts == {"golden retriever", "tabby cat"}
  assert sorted(set(b["label"].numpy().tolist())) == [0, 1]


def _fuzz_manifests(tmp_path, iterations, seed):
  """Seeded byte mutants of a CSV and a JSONL manifest through the converter: never an
  exception; every row found is written or rejected with a reason, the report says exactly what
  the shards hold, and no temporary file is left."""
  names = _images(tmp_path / "imgs", 4)
  rows = [{"path": f"imgs/{n}", "title": f"image {i}", "label": i} for i, n in enumerate(names)]
  rows.append({"path": "imgs/broken.png", "title": "broken", "label": 9})
  with open(tmp_path / "base.csv", "w", newline="") as f:
    w = csv.DictWriter(f, ["path", "title", "label"])
    w.writeheader()
    w.writerows(rows)
  with open(tmp_path / "base.jsonl", "w") as f:
    f.writelines(json.dumps(r) + "\n" for r in rows)
  rng = np.random.default_rng(seed)
  reasons = set()
  for it in range(iterations):
    ext = ".csv" if it % 2 == 0 else ".jsonl"
    data = bytearray((tmp_path / f"base{ext}").read_bytes())
    for _ in range(int(rng.integers(1, 4))):
      i = int(rng.integers(len(data)))
      kind = int(rng.integers(3))
      if kind == 0:
        data[i] = int(rng.integers(256))
      elif kind == 1:
        data[i:i] = bytes([int(rng.integers(256))])
      else:
        del data[i]
    manifest = tmp_path / f"m{it}{ext}"
    manifest.write_bytes(bytes(data))
    found, pre_rejected = records.read_manifest(str(manifest), "path", ["title"], "label")
    out = tmp_path / f"out{it}"
    report = records.convert(found, str(out), "d", num_shards=2, workers=1,
                             pre_rejected=pre_rejected, quiet=True)
    shards = sorted(str(p) for p in out.glob("d-*.tfrecord"))
    in_shards = sum(1 for _ in tf.data.TFRecordDataset(shards))
    assert report["written"] == in_shards, it
    assert report["written"] + report["rejected"] == len(found) + len(pre_rejected), it
    assert sum(report["rejected_by_reason"].values()) == report["rejected"], it
    assert all(reason for _, reason in report["rejected_rows"])
    assert not [p for p in os.listdir(out) if ".tmp" in p], it
    reasons.update(report["rejected_by_reason"])
  return reasons


def test_fuzzed_manifests_are_written_or_rejected_with_reasons(tmp_path):
  reasons = _fuzz_manifests(tmp_path, 16, seed=0)
  assert "missing file" in reasons and any(r.startswith("unreadable") for r in reasons), reasons


@pytest.mark.slow
def test_fuzzed_manifests_long_run(tmp_path):
  _fuzz_manifests(tmp_path, 400, seed=1)


@pytest.mark.parametrize("mode", ["RGB", "P"])
def test_max_side_shrinks_large_images_keeping_aspect(tmp_path, mode):
  """A 160×80 image of four flat quadrants, with max_side 32: a 32×16 PNG in colour (a palette
  image too) whose corners, 8 pixels from any quadrant edge (beyond Lanczos' 3-pixel reach), keep
  their quadrant's colour; a flat image stays exactly flat; small images pass untouched."""
  colours = np.array([[200, 10, 10], [10, 200, 10], [10, 10, 200], [250, 250, 0]], np.uint8)
  pixels = np.zeros((80, 160, 3), np.uint8)
  for q, (r, c) in enumerate([(0, 0), (0, 80), (40, 0), (40, 80)]):
    pixels[r:r + 40, c:c + 80] = colours[q]
  big = tmp_path / f"big.{'png' if mode == 'RGB' else 'gif'}"
  image = Image.fromarray(pixels)
  (image if mode == "RGB" else image.quantize(4)).save(big)
  data, reason = records.load_image_bytes(str(big), max_side=32)
  assert reason is None
  out = Image.open(io.BytesIO(data))
  assert (out.format, out.size) == ("PNG", (32, 16))
  got = np.asarray(out.convert("RGB")).astype(int)
  for q, (r, c) in enumerate([(0, 0), (0, 31), (15, 0), (15, 31)]):
    np.testing.assert_allclose(got[r, c], colours[q], rtol=0, atol=1)
  flat = tmp_path / "flat.png"
  Image.fromarray(np.full((30, 50, 3), [12, 34, 56], np.uint8)).save(flat)
  shrunk = Image.open(io.BytesIO(records.load_image_bytes(str(flat), 10)[0]))
  assert shrunk.size == (10, 6)
  assert (np.asarray(shrunk.convert("RGB")) == [12, 34, 56]).all()
  small = tmp_path / "small.png"
  Image.fromarray(pixels[:4, :8]).save(small)
  assert records.load_image_bytes(str(small), max_side=8)[0] == small.read_bytes()
