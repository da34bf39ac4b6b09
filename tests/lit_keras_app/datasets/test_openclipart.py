"""Open Clip Art builder: metadata parsing on real SVG heads from the Debian package (checked in
under `openclipart_svg/`: each file's text up to `</metadata>`, then `</svg>`), keyword cleaning,
captions, the concept split, bad files, the apt fetch; the real build is `slow`."""
import glob
import json
import os
import shutil
import subprocess

import numpy as np
from PIL import Image
import pytest

from lit_keras.data import pipeline
from lit_keras_app.datasets import apt
from lit_keras_app.datasets import openclipart as oc

SNIPPETS = os.path.join(os.path.dirname(__file__), "openclipart_svg")


def snippet(rel):
  return os.path.join(SNIPPETS, rel.replace("/", "~") + ".svg")


def test_metadata_of_real_files():
  lemon = oc.parse_metadata(snippet("computer/icons/lemon-theme/actions/viewmag+"))
  assert lemon == {"title": "Lemon SVG theme", "description": "",
                   "keywords": ["icon", "", "lemon_theme_icon", "icons", "hash", "action",
                                "computer", "theme"],
                   "agents": ["Jose Hevia", "Jose Hevia", "Jose Hevia"]}
  ireland = oc.parse_metadata(snippet("signs_and_symbols/flags/europe/ireland"))
  assert (ireland["title"], ireland["description"]) == ("ireland", "HASH(0x862bbb8)")
  lightning = oc.parse_metadata(snippet("signs_and_symbols/weather/lightning_jon_phillips_02"))
  # The Work's own dc:title, not the creator's or publisher's (also dc:title, of a cc:Agent).
  assert lightning["title"] == "Lightning"
  assert lightning["description"] == "This is a nice detailed image of lightning."
  assert lightning["agents"] == ["Jon Phillips", "Open Clip Art Library", "Jon Phillips"]


def test_keyword_cleaning():
  assert oc.clean_keywords(["icon", "", "lemon_theme_icon", "icons", "hash", "action",
                            "computer", "theme"], ["Jose Hevia"]) == ["action", "computer"]
  assert oc.clean_keywords(["architetto francesco rollandin", "dinosaur", "Rollandin"],
                           ["Architetto Francesco Rollandin", "Open Clip Art Library"]) == [
                               "dinosaur"]
  # A generic publisher's words are ordinary words; hex strings, numbers and the title go.
  assert oc.clean_keywords(["library", "0xa0ec6d0", "862bbb8", "2004", "Road_Sign", "road-sign",
                            "Lightning"], ["Open Clip Art Library"], title="lightning") == [
                                "library", "road sign"]


def test_titles_descriptions_and_captions():
  rel = "computer/icons/lemon-theme/actions/viewmag+"
  d = oc.drawing(rel, oc.parse_metadata(snippet(rel)))
  assert d == {"rel": rel, "title": "viewmag+", "texts": ["viewmag+", "action, computer",
                                                          "actions, computer"],
               "concept": "viewmag", "label": oc.CATEGORIES.index("computer")}
  rel = "signs_and_symbols/weather/lightning_jon_phillips_02"
  assert oc.drawing(rel, oc.parse_metadata(snippet(rel)))["texts"] == [
      "Lightning", "This is a nice detailed image of lightning.",
      "electricity, weather, sudden, atmosphere, fast, quick", "weather, signs and symbols"]
  rel = "shapes/gpride_jean_victor_balin_"  # the description is an e-mail address
  assert oc.drawing(rel, oc.parse_metadata(snippet(rel)))["texts"] == [
      "gpride", "shape, geometry", "shapes"]
  rel = "signs_and_symbols/map_symbols/aiga_customs_"
  meta = oc.parse_metadata(snippet(rel))
  assert oc.drawing(rel, meta)["texts"] == ["AIGA Symbol Signs", "EPS converted from",
                                            "symbol, mapsym", "map symbols, signs and symbols"]
  series = oc.drawing(rel, meta, shared_titles=frozenset({"aiga symbol signs"}))
  assert (series["title"], series["concept"]) == ("AIGA Symbol Signs (customs)",
                                                  "aiga symbol signs customs")
  assert oc.stem_title("people/smilies/smileytwinkle_nicolas_ga_01") == "smileytwinkle nicolas ga"
  assert oc.stem_title("animals/cavallo_architetto_franc_01", ["Architetto Francesco X"]) == (
      "cavallo franc")
  assert oc.clean_description("x " * 150) == ("x " * 100).strip()
  assert oc.drawing("unsorted/thing", oc.parse_metadata(snippet(
      "shapes/stars/star_67pt11step")))["label"] is None


def _png(path, seed):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  Image.fromarray(np.random.default_rng(seed).integers(0, 255, (6, 6, 4), np.uint8)).save(path)


@pytest.fixture
def package(tmp_path):
  """A package tree of the real layout: the checked-in SVGs with PNGs, plus every kind of fault."""
  root = tmp_path / "usr" / "share" / "openclipart"
  for i, svg in enumerate(sorted(glob.glob(os.path.join(SNIPPETS, "*.svg")))):
    rel = os.path.basename(svg)[:-4].replace("~", "/")
    os.makedirs(os.path.dirname(root / "svg" / rel), exist_ok=True)
    shutil.copy(svg, root / "svg" / f"{rel}.svg")
    _png(str(root / "png" / f"{rel}.png"), i)
  star = snippet("shapes/stars/star_67pt11step")
  for seed, n in ((40, "star_05pt02step"), (41, "star_07pt03step")):  # 3 "gramastar"s
    shutil.copy(star, root / "svg" / "shapes" / "stars" / f"{n}.svg")
    _png(str(root / "png" / "shapes" / "stars" / f"{n}.png"), seed)
  # The same image twice: a symlink into another category, and a byte-identical copy.
  for kind in ("png", "svg"):  # as the package does it, the SVG is linked too
    (root / kind / "logos").mkdir()
    os.symlink(f"../shapes/gpride_jean_victor_balin_.{kind}",
               root / kind / "logos" / f"gpride.{kind}")
  shutil.copy(root / "png" / "signs_and_symbols" / "flags" / "europe" / "ireland.png",
              root / "png" / "unsorted_ireland.png")
  _png(str(root / "png" / "food" / "no_svg.png"), 50)  # no SVG: captions from its path
  _png(str(root / "png" / "food" / "broken_svg.png"), 51)
  (root / "svg" / "food").mkdir(exist_ok=True)
  with open(snippet("shapes/gpride_jean_victor_balin_"), encoding="utf-8") as f:
    (root / "svg" / "food" / "broken_svg.svg").write_text(f.read()[:900], encoding="utf-8")
  for kind in ("png", "svg"):
    (root / kind / "tools").mkdir()
  (root / "png" / "tools" / "not_a_png.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
  shutil.copy(snippet("animals/dinosaurs/dinosauro_architetto_fra_01"),
              root / "svg" / "tools" / "not_a_png.svg")
  return tmp_path


def test_load_reports_every_fault(package, monkeypatch):
  monkeypatch.setattr(oc, "MAX_PER_CONCEPT", 2)
  root = oc.find_root(str(package))
  drawings, report = oc.load(root)
  assert report["png_files"] == 15
  assert (report["duplicate_images"], report["over_concept_cap"]) == (2, 1)
  assert (report["svg_missing"], report["svg_unreadable"]) == (1, 1)
  assert report["drawings"] == len(drawings) == 15 - 2 - 1
  assert "food/no_svg.svg: missing" in report["problems"]
  assert any(p.startswith("food/broken_svg.svg: not well-formed XML") for p in report["problems"])
  by_rel = {d["rel"]: d for d in drawings}
  assert by_rel["food/no_svg"]["texts"] == ["no svg", "food"]
  assert by_rel["food/broken_svg"]["texts"] == ["broken svg", "food"]
  # Kept once, the first by path, with its own folder as a caption.
  assert "shapes/gpride_jean_victor_balin_" not in by_rel and "unsorted_ireland" not in by_rel
  assert by_rel["logos/gpride"]["texts"] == ["gpride", "shape, geometry", "logos"]
  stars = sorted(r for r in by_rel if r.startswith("shapes/stars/"))
  assert stars == ["shapes/stars/star_05pt02step", "shapes/stars/star_07pt03step"]


def test_split_is_deterministic_and_disjoint(package):
  drawings, _ = oc.load(oc.find_root(str(package)))
  train, held = oc.concept_split(drawings)
  concepts = {d["concept"] for d in drawings}
  assert not train & held and train | held == concepts
  assert len(held) == round(len(concepts) * oc.HELDOUT_FRACTION)
  assert oc.concept_split(drawings) == (train, held)
  # The same permutation NumPy draws for the sorted concepts.
  keys = sorted(concepts)
  order = np.random.default_rng(oc.SPLIT_SEED).permutation(len(keys))
  assert held == {keys[i] for i in order[:len(held)]}
  assert oc.concept_split(drawings, seed=1) != (train, held)


def test_build_writes_readable_splits(package, tmp_path, monkeypatch):
  monkeypatch.setenv("OPENCLIPART_DIR", str(package))
  out = str(tmp_path / "out")
  summary = oc.build(out, str(tmp_path / "cache"), num_shards=2, workers=1)
  drawings, report = oc.load(oc.find_root(str(package)))
  assert summary["source"] == report
  assert summary["train"]["written"] + summary["heldout"]["written"] == len(drawings) - 1
  assert summary["train"]["rejected"] + summary["heldout"]["rejected"] == 1  # tools/not_a_png
  split = json.load(open(os.path.join(out, "split.json")))
  want = {d["rel"]: d for d in drawings if d["rel"] != "tools/not_a_png"}
  seen = {}
  for name in ("train", "heldout"):
    for batch in pipeline.eval_dataset(os.path.join(out, f"{name}-*.tfrecord"), 8, 16):
      for i, texts, n, label in zip(batch["id"].numpy(), batch["texts"].numpy(),
                                    batch["num_texts"].numpy(), batch["label"].numpy()):
        d = want[i.decode()]
        assert d["concept"] in split[name]
        assert [t.decode() for t in texts[:n]] == d["texts"]
        assert label == (-1 if d["label"] is None else d["label"])
        seen[i.decode()] = name
  assert set(seen) == set(want)
  assert oc.OpenClipArt().class_names(out)[oc.CATEGORIES.index("signs_and_symbols")] == (
      "signs and symbols")


def test_locate(package, tmp_path, monkeypatch):
  monkeypatch.setenv("OPENCLIPART_DIR", str(package))
  assert oc.locate(str(tmp_path)) == str(package / "usr" / "share" / "openclipart")
  monkeypatch.setenv("OPENCLIPART_DIR", str(tmp_path / "nothing"))
  with pytest.raises(apt.SourceMissingError, match="holds no png/ and svg/"):
    oc.locate(str(tmp_path))


def test_apt_fetch_updates_empty_lists_then_unpacks(tmp_path, monkeypatch):
  """A real .deb (dpkg-deb --build) served by a stand-in `apt-get` whose package lists are empty
  until `apt-get update`."""
  if shutil.which("dpkg-deb") is None or os.geteuid() != 0:
    pytest.skip("needs dpkg-deb and root (the update path)")
  tree = tmp_path / "pkg"
  (tree / "DEBIAN").mkdir(parents=True)
  (tree / "DEBIAN" / "control").write_text(
      "Package: tiny\nVersion: 1\nArchitecture: all\nMaintainer: x <x@y>\nDescription: t\n")
  (tree / "usr" / "share" / "tiny").mkdir(parents=True)
  (tree / "usr" / "share" / "tiny" / "a.txt").write_text("payload")
  subprocess.run(["dpkg-deb", "--build", str(tree), str(tmp_path / "tiny_1_all.deb")],
                 check=True, capture_output=True)
  bin_dir = tmp_path / "bin"
  bin_dir.mkdir()
  fake = bin_dir / "apt-get"
  fake.write_text(f"""#!/bin/sh
if [ "$1" = update ]; then touch {tmp_path}/updated; echo "$@" >> {tmp_path}/calls; exit 0; fi
echo "$@" >> {tmp_path}/calls
if [ ! -e {tmp_path}/updated ]; then echo "E: Unable to locate package tiny" >&2; exit 100; fi
cp {tmp_path}/tiny_1_all.deb .
""")
  fake.chmod(0o755)
  monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
  dest = apt.fetch("tiny-1", ["tiny=1"], str(tmp_path / "cache"))
  assert open(os.path.join(dest, "usr", "share", "tiny", "a.txt")).read() == "payload"
  assert open(tmp_path / "calls").read().split("\n")[:3] == [
      "download tiny=1", "update", "download tiny=1"]
  assert apt.fetch("tiny-1", ["tiny=1"], str(tmp_path / "cache")) == dest  # cached: no call
  assert open(tmp_path / "calls").read().count("download") == 2


@pytest.mark.slow
def test_real_openclipart_build(tmp_path):
  """The real packages (installed, or fetched with apt-get download) built end to end."""
  out = tmp_path / "oca"
  summary = oc.build(str(out), str(tmp_path / "cache"))
  src = summary["source"]
  assert (src["png_files"], src["duplicate_images"]) == (8121, 1221)
  assert src["drawings"] == 8121 - 1221 - src["over_concept_cap"]
  assert summary["train"]["written"] + summary["heldout"]["written"] + sum(
      summary[s]["rejected"] for s in ("train", "heldout")) == src["drawings"]
  split = json.load(open(out / "split.json"))
  assert not set(split["train"]) & set(split["heldout"])
