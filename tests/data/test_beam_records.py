"""The Beam converter on the DirectRunner against the local converter: over a small real
manifest (scikit-learn's handwritten digits, with broken, duplicate and caption-less rows) both
write byte-identical shards and the same report; a re-run skips finished shards."""
import csv
import filecmp
import glob
import json
import os

import numpy as np
from PIL import Image
import pytest
from sklearn import datasets as sk_datasets

from lit_keras.data import beam_records
from lit_keras.data import records
from lit_keras_app.cli import convert as convert_cli

NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


@pytest.fixture(scope="module")
def manifest(tmp_path_factory):
  """40 real digit images (PNG and WebP) and a CSV manifest with rows that must be rejected."""
  root = tmp_path_factory.mktemp("digits")
  digits = sk_datasets.load_digits()
  rows = []
  for i in range(40):
    image = Image.fromarray((digits.images[i] * 255 / 16).astype(np.uint8)).convert("RGB")
    name = f"d{i:03d}.{'webp' if i % 7 == 0 else 'png'}"  # WebP: re-encoded as PNG
    image.resize((16, 16)).save(root / name)
    label = int(digits.target[i])
    rows.append([name, f"a handwritten {NAMES[label]}", f"digit|{label}", label])
  (root / "broken.png").write_bytes(b"\x89PNG but not an image")
  rows += [["missing.png", "gone", "", 1], ["broken.png", "broken", "", 2],
           ["d003.png", "the same image again", "", 3],  # a duplicate id
           ["d041.png", "", "", 4],  # no caption (and no file)
           ["d005.png", "bad label", "", "five"]]  # not an integer label
  with open(root / "pairs.csv", "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["path", "title", "tags", "label"])
    w.writerows(rows)
  return str(root / "pairs.csv")


def _shards(directory):
  return sorted(os.path.basename(p) for p in glob.glob(os.path.join(directory, "*.tfrecord")))


def test_beam_writes_exactly_what_the_local_converter_writes(manifest, tmp_path):
  kwargs = dict(image_column="path", caption_columns=["title", "tags"], label_column="label",
                caption_separator="|")
  rows, rejected = records.read_manifest(manifest, kwargs["image_column"],
                                         kwargs["caption_columns"], kwargs["label_column"],
                                         caption_separator="|")
  local = records.convert(rows, str(tmp_path / "local"), "train", 4, workers=1,
                          pre_rejected=rejected, quiet=True)
  beam = beam_records.convert(manifest, str(tmp_path / "beam"), "train", 4,
                              ["--runner=DirectRunner"], **kwargs)
  assert _shards(tmp_path / "local") == _shards(tmp_path / "beam") == [
      f"train-0000{i}-of-00004.tfrecord" for i in range(4)]
  for name in _shards(tmp_path / "local"):
    assert filecmp.cmp(tmp_path / "local" / name, tmp_path / "beam" / name, shallow=False), name
  assert local["written"] == beam["written"] == 40
  for key in ("rejected", "rejected_by_reason", "rejected_rows", "num_shards",
              "shards_skipped_as_done"):
    assert beam[key] == local[key], key
  assert local["rejected_by_reason"] == {
      "missing file": 1, "no caption": 1, "unreadable image": 1, "duplicate id 'd003.png'": 1,
      "label 'five' is not an integer": 1}
  assert json.load(open(tmp_path / "beam" / "train.report.json")) == beam


def test_beam_cli_resumes_and_refuses_beam_options_without_beam(manifest, tmp_path, capsys):
  out = str(tmp_path / "out")
  argv = ["--beam", "--manifest", manifest, "--image_column", "path", "--caption_columns",
          "title", "--output_dir", out, "--prefix", "p", "--num_shards", "3",
          "--runner=DirectRunner"]
  assert convert_cli.main(argv) == 0
  assert "written 40, rejected 5" in capsys.readouterr().out
  first = {p: os.path.getmtime(p) for p in glob.glob(os.path.join(out, "*.tfrecord"))}
  assert convert_cli.main(argv) == 0  # every shard done: none is rewritten
  assert "written 40, rejected 5" in capsys.readouterr().out
  assert {p: os.path.getmtime(p) for p in first} == first
  assert json.load(open(os.path.join(out, "p.report.json")))["shards_skipped_as_done"] == 3
  with pytest.raises(SystemExit):
    convert_cli.main(argv[1:])  # --runner without --beam
  assert "Beam options need --beam" in capsys.readouterr().err
