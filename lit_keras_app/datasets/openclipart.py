"""Open Clip Art Library 0.18 as an image–text set: 8,121 public-domain drawings from Debian's
`openclipart-png` (the images) and `openclipart-svg` (the same files as SVG, whose RDF metadata
gives each drawing a title, keywords and sometimes a description).

Where the files come from, first found wins: `$OPENCLIPART_DIR` (a directory holding `png/` and
`svg/`, or an unpacked package tree `usr/share/openclipart/...`); the installed packages
(`apt-get install openclipart-png openclipart-svg` puts them in `/usr/share/openclipart`); else
`apt-get download` of both packages into the cache (after `apt-get update` when the package lists
are empty, as root), unpacked with `dpkg-deb -x`.

Each PNG is paired with the SVG at the same path. Captions, all kept as the example's texts (the
training sampler draws one per step):
  1. the title (`dc:title` of the SVG's `cc:Work`; collection labels such as "Part of the Flat Icon
     Collection (…)" or "Lemon SVG theme" are replaced by the file name, see `clean_title`);
  2. the description (`dc:description`), without Perl `HASH(0x…)` residue, URLs and e-mail
     addresses, ≤ 200 characters;
  3. the cleaned keywords (`rdf:li` under `dc:subject`), comma-separated (rule: `clean_keywords`);
  4. the category path, deepest first ("medicine, science").

Identical images (same PNG bytes; the package links many drawings into several categories) are
kept once, the first by path. A **concept** is a drawing's normalised title; generated series
share one ("gramastar": 1,375 stars), so a concept keeps at most `MAX_PER_CONCEPT` images (the
first by path). A deterministic **concept split** holds out 20% of the concepts (seeded
permutation of the sorted concept keys): no held-out title is seen in training. Labels: the
top-level category among `CATEGORIES` (20 classes; `special` and `unsorted` are unlabelled).
Images larger than `MAX_SIDE` are shrunk to it. Files the package gets wrong (an SVG missing or
unparsable, a PNG that does not decode) are reported and counted in `summary.json`, never fatal:
a drawing without readable metadata keeps its file name and category as captions; a PNG that
does not decode is rejected by the converter (in 0.18: three posters of 231–623 megapixels, over
Pillow's decompression-bomb limit).
Splits: `train`, `heldout`.
"""
import collections
import glob
import hashlib
import json
import os
import re
import xml.etree.ElementTree as ET

import numpy as np
import tensorflow as tf

from lit_keras.data import records
from lit_keras_app.datasets import apt
from lit_keras_app.datasets import base

PACKAGES = ("openclipart-png=1:0.18+dfsg-19", "openclipart-svg=1:0.18+dfsg-19")
INSTALLED = "/usr/share/openclipart"
HELDOUT_FRACTION = 0.2
SPLIT_SEED = 0
MAX_PER_CONCEPT = 16
MAX_DESCRIPTION = 200
MAX_SIDE = 512  # longer image sides are shrunk to this (some drawings are 16,000 px tall)
CATEGORIES = ("animals", "buildings", "buttons", "computer", "containers", "decorations",
              "education", "electronics", "food", "geography", "logos", "office", "people",
              "plants", "recreation", "science", "shapes", "signs_and_symbols", "tools",
              "transportation")
TEMPLATES = ("{}", "a drawing of {}.", "clip art of {}.")

# Keywords (and category folder names) that describe the package, the icon theme or the tool that
# made a file, never what is drawn. A keyword is dropped when any of its words is one of these.
NOISE_WORDS = frozenset({"hash", "magick", "icon", "icons", "theme", "appicon", "unsorted",
                         "special", "clipart", "openclipart", "svg", "png", "mimetypes", "mime",
                         "gradients", "gradient"})
# Publishers that are not a person's name (their words are ordinary words).
GENERIC_AGENTS = frozenset({"open clip art library", "open clip art project", "public domain",
                            "openclipart", ""})
COLLECTION_TITLE = re.compile(r"\b(collection|theme|icons|icon ?set|clip ?art by)\b|^svg\b", re.I)
# A title this many drawings share names a series ("AIGA Symbol Signs", "card", "gramastar"): each
# drawing's title gets its file name added, "AIGA Symbol Signs (air transportation)".
SHARED_TITLE = 20

_DC = "{http://purl.org/dc/elements/1.1/}"
_CC = "{http://web.resource.org/cc/}"
_RDF = "{http://www.w3.org/1999/02/22-rdf-syntax-ns#}"
_SVG_METADATA = "{http://www.w3.org/2000/svg}metadata"


class MetadataError(ValueError):
  pass


def _text(element):
  return " ".join("".join(element.itertext()).split()) if element is not None else ""


def parse_metadata(svg_path):
  """The drawing's metadata from its SVG: {title, description, keywords, agents}.

  Reads the `cc:Work` of the RDF block (its own `dc:title`, not the creator's or publisher's);
  stops at the end of the `<metadata>` element. An SVG without metadata gives empty fields.
  Raises `MetadataError` for a file that is not well-formed XML.
  """
  work = None
  try:
    for _, element in ET.iterparse(svg_path, events=("end",)):
      if element.tag == _CC + "Work" and work is None:
        work = element
      if element.tag == _SVG_METADATA and work is not None:
        break
  except ET.ParseError as e:
    raise MetadataError(f"not well-formed XML ({e})") from None
  if work is None:
    return {"title": "", "description": "", "keywords": [], "agents": []}
  subject = work.find(_DC + "subject")
  keywords = [_text(li) for li in subject.iter(_RDF + "li")] if subject is not None else []
  agents = [_text(agent.find(_DC + "title"))
            for tag in ("creator", "publisher", "rights", "contributor")
            for e in work.findall(_DC + tag) for agent in e.iter(_CC + "Agent")]
  return {"title": _text(work.find(_DC + "title")),
          "description": _text(work.find(_DC + "description")),
          "keywords": keywords, "agents": [a for a in agents if a]}


def _words(text):
  return " ".join(re.sub(r"[_\-]+", " ", text.lower()).split())


def clean_keywords(keywords, agents=(), title=""):
  """The keywords that say what is drawn, lower-cased, '_'/'-' as spaces, de-duplicated in order.

  Dropped: empty ones; any with a word in `NOISE_WORDS` ("hash", "magick", "lemon_theme_icon",
  …); numbers and hex strings; the name of the drawing's creator, publisher or rights holder
  (whole, or one word of it of 4+ letters), unless that is a generic publisher such as "Open
  Clip Art Library"; and the title itself (it is a caption already).
  """
  names = {_words(a) for a in agents} - GENERIC_AGENTS
  name_words = {w for n in names for w in n.split() if len(w) >= 4}
  out, seen = [], {_words(title)}
  for k in keywords:
    k = _words(k)
    words = k.split()
    if (not k or k in seen or NOISE_WORDS.intersection(words) or k in names
        or k in name_words or re.fullmatch(r"(0x)?[0-9a-f]{6,}|[0-9 .]+", k)):
      continue
    seen.add(k)
    out.append(k)
  return out


def stem_title(rel_path, agents=()):
  """A title from the file name: "…/weather/moon01" → "moon"; "…/gnome-fs-trash-empty" →
  "gnome fs trash empty"; digits and the creator's name words dropped."""
  words = re.sub(r"[0-9]+", " ", _words(os.path.basename(rel_path))).split()
  names = {w for a in agents if _words(a) not in GENERIC_AGENTS for w in _words(a).split()}
  kept = [w for w in words if w not in names]
  return " ".join(kept or words) or _words(os.path.basename(rel_path))


def clean_title(title, rel_path, agents=(), shared_titles=frozenset()):
  """The title, whitespace collapsed and '_' as spaces; a collection label ("Part of the Flat Icon
  Collection (…)", "Lemon SVG theme", "Clipart by …") or a missing title becomes the file name
  (`stem_title`); a title in `shared_titles` (concept keys of series) gets the file name's words
  that it lacks in brackets."""
  title = " ".join(title.replace("_", " ").split())
  if not title or COLLECTION_TITLE.search(title):
    return stem_title(rel_path, agents)
  if concept_key(title) in shared_titles:
    have = set(concept_key(title).split())
    extra = [w for w in stem_title(rel_path, agents).split() if w not in have and len(w) > 1]
    if extra:
      return f"{title} ({' '.join(extra)})"
  return title


def clean_description(description, title=""):
  """The description without `HASH(0x…)` residue, URLs and e-mail addresses, whitespace
  collapsed, cut at a word boundary to `MAX_DESCRIPTION` characters; "" when nothing (or only
  the title) is left."""
  d = re.sub(r"HASH\(0x[0-9a-fA-F]+\)|https?://\S+|www\.\S+|\S+@\S+", " ", description)
  d = " ".join(d.split())
  if len(d) > MAX_DESCRIPTION:
    d = d[:MAX_DESCRIPTION].rsplit(" ", 1)[0]
  if len(d) < 3 or d.lower() == title.lower():
    return ""
  return d


def category_caption(rel_path):
  """The folders of the drawing, deepest first, cleaned like keywords: "medicine, science"."""
  folders = clean_keywords(os.path.dirname(rel_path).split("/")[::-1])
  return ", ".join(folders)


def concept_key(title):
  """The concept a drawing belongs to: its title, lower-cased, letters only."""
  return " ".join(re.sub(r"[^a-z]+", " ", title.lower()).split())


def drawing(rel_path, meta, shared_titles=frozenset()):
  """A drawing's title, captions, concept and label from its path and parsed metadata."""
  title = clean_title(meta["title"], rel_path, meta["agents"], shared_titles)
  texts = [title, clean_description(meta["description"], title),
           ", ".join(clean_keywords(meta["keywords"], meta["agents"], title)),
           category_caption(rel_path)]
  seen, captions = set(), []
  for t in texts:
    if t and t.lower() not in seen:
      seen.add(t.lower())
      captions.append(t)
  top = rel_path.split("/")[0]
  return {"rel": rel_path, "title": title, "texts": captions,
          "concept": concept_key(title) or concept_key(rel_path),
          "label": CATEGORIES.index(top) if top in CATEGORIES else None}


def find_root(path):
  """The directory holding `png/` and `svg/` under `path` (itself, `openclipart/` or
  `usr/share/openclipart/`), or None."""
  for root in (path, os.path.join(path, "openclipart"),
               os.path.join(path, "usr", "share", "openclipart")):
    if os.path.isdir(os.path.join(root, "png")) and os.path.isdir(os.path.join(root, "svg")):
      return root
  return None


def locate(cache_dir):
  """The Open Clip Art files: `$OPENCLIPART_DIR`, the installed packages, or a download."""
  env = os.environ.get("OPENCLIPART_DIR")
  if env:
    root = find_root(env)
    if root is None:
      raise apt.SourceMissingError(f"OPENCLIPART_DIR={env} holds no png/ and svg/ folders "
                                   "(nor usr/share/openclipart/)")
    return root
  return find_root(INSTALLED) or find_root(apt.fetch("openclipart-0.18", PACKAGES, cache_dir))


def load(root):
  """All drawings under `root` (sorted by path), de-duplicated and capped per concept.

  Returns (drawings, report): report counts `png_files`, `svg_missing`, `svg_unreadable` (with
  up to 20 examples in `problems`), `duplicate_images`, `over_concept_cap`, `drawings`.
  """
  png_root, svg_root = os.path.join(root, "png"), os.path.join(root, "svg")
  paths = sorted(glob.glob(os.path.join(png_root, "**", "*.png"), recursive=True))
  report = dict.fromkeys(("png_files", "duplicate_images", "svg_missing", "svg_unreadable",
                          "over_concept_cap", "drawings"), 0)
  report["png_files"] = len(paths)
  problems, seen_bytes, parsed = [], set(), []
  for path in paths:
    rel = os.path.relpath(path, png_root)[:-len(".png")]
    try:
      with open(path, "rb") as f:
        digest = hashlib.sha1(f.read()).hexdigest()
    except OSError as e:  # left to the converter to reject
      digest = None
      problems.append(f"{rel}.png: {type(e).__name__}")
    if digest in seen_bytes:
      report["duplicate_images"] += 1
      continue
    if digest:
      seen_bytes.add(digest)
    svg = os.path.join(svg_root, rel + ".svg")
    meta = {"title": "", "description": "", "keywords": [], "agents": []}
    if not os.path.exists(svg):
      report["svg_missing"] += 1
      problems.append(f"{rel}.svg: missing")
    else:
      try:
        meta = parse_metadata(svg)
      except (MetadataError, OSError) as e:
        report["svg_unreadable"] += 1
        problems.append(f"{rel}.svg: {e}")
    parsed.append((path, rel, meta))
  titles = collections.Counter(concept_key(clean_title(meta["title"], rel, meta["agents"]))
                               for _, rel, meta in parsed)
  shared = frozenset(t for t, n in titles.items() if n >= SHARED_TITLE)
  per_concept, out = collections.Counter(), []
  for path, rel, meta in parsed:
    d = drawing(rel, meta, shared)
    if per_concept[d["concept"]] >= MAX_PER_CONCEPT:
      report["over_concept_cap"] += 1
      continue
    per_concept[d["concept"]] += 1
    d["image_path"] = path
    out.append(d)
  report["drawings"] = len(out)
  report["problems"] = problems[:20]
  return out, report


def concept_split(drawings, heldout_fraction=HELDOUT_FRACTION, seed=SPLIT_SEED):
  """Deterministic split of the concept keys: (train set, held-out set)."""
  keys = sorted({d["concept"] for d in drawings})
  order = np.random.default_rng(seed).permutation(len(keys))
  held = {keys[i] for i in order[:int(round(len(keys) * heldout_fraction))]}
  return set(keys) - held, held


def build(out_dir, cache_dir, root=None, num_shards=4, workers=None):
  """Writes `train-*` and `heldout-*` TFRecords, `categories.txt`, `split.json` and
  `summary.json` into `out_dir`; returns the summary."""
  root = root or locate(cache_dir)
  drawings, report = load(root)
  train, held = concept_split(drawings)
  tf.io.gfile.makedirs(out_dir)
  with tf.io.gfile.GFile(os.path.join(out_dir, "categories.txt"), "w") as f:
    f.write("\n".join(CATEGORIES) + "\n")
  with tf.io.gfile.GFile(os.path.join(out_dir, "split.json"), "w") as f:
    json.dump({"train": sorted(train), "heldout": sorted(held), "seed": SPLIT_SEED,
               "heldout_fraction": HELDOUT_FRACTION}, f, indent=1)
  summary = {"source": report}
  for split, keys in (("train", train), ("heldout", held)):
    rows = [{"image_path": d["image_path"], "texts": d["texts"], "label": d["label"],
             "id": d["rel"], "where": d["rel"], "max_side": MAX_SIDE}
            for d in drawings if d["concept"] in keys]
    written = records.convert(rows, out_dir, split, num_shards, workers)
    summary[split] = {"written": written["written"], "rejected": written["rejected"]}
    print(f"[openclipart] {split}: {written['written']} examples, {written['rejected']} "
          "rejected", flush=True)
  print(f"[openclipart] {report['png_files']} PNGs: {report['duplicate_images']} duplicate "
        f"images, {report['over_concept_cap']} over the per-concept cap, "
        f"{report['svg_missing']} SVGs missing, {report['svg_unreadable']} unreadable",
        flush=True)
  with tf.io.gfile.GFile(os.path.join(out_dir, "summary.json"), "w") as f:
    json.dump(summary, f, indent=2)
  return summary


class OpenClipArt(base.Dataset):
  name = "openclipart"
  done_file = "summary.json"
  splits = {"train": "train-*.tfrecord", "heldout": "heldout-*.tfrecord"}
  templates = TEMPLATES

  def build(self, data_dir, cache_dir):
    build(data_dir, cache_dir)

  def class_names(self, data_dir):
    del data_dir
    return [c.replace("_", " ") for c in CATEGORIES]


base.register(OpenClipArt())
