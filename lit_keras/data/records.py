"""Write image–caption manifests or class-per-folder trees as sharded TFRecords.

The `lit-keras-convert` program is the command line of this module. Manifests: CSV, TSV or JSON lines (by extension). Caption columns may hold one caption or, in
JSONL, a list; `--caption_separator` splits a CSV cell into several. Every readable image gets one
example with all its captions (schema in `lit_keras.data.schema`). Images are checked by decoding
them (Pillow); JPEG/PNG/GIF/BMP bytes are kept as they are, other formats (WebP, TIFF, …) are
re-encoded as PNG. Rows are assigned to shards by a hash of their id (deterministic), shards are
written in parallel to temporary files and renamed when complete (nothing partial is ever left
under a final name), finished shards are skipped on a re-run (resumable), and a report counts
written and rejected rows with reasons.
"""
import collections
import csv
import hashlib
import io
import json
from multiprocessing import pool as mp_pool
import os
import re
import sys
import warnings

from PIL import Image
import tensorflow as tf
from tqdm import tqdm

from lit_keras.data import schema

KEEP_FORMATS = ("JPEG", "PNG", "GIF", "BMP")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp", ".tif", ".tiff")


def read_manifest(path, image_column, caption_columns, label_column=None, id_column=None,
                  image_root=None, caption_separator=None):
  """Returns (rows, rejected). rows: dicts with image_path, texts, label, id."""
  ext = os.path.splitext(path)[1].lower()
  if ext not in (".jsonl", ".csv", ".tsv"):
    raise ValueError(f"unsupported manifest {path}: expected .csv, .tsv or .jsonl")
  with tf.io.gfile.GFile(path, "rb") as f:
    raw = f.read()
  if ext == ".jsonl":
    records = []
    for n, line in enumerate(raw.split(b"\n"), 1):
      if line.strip():
        try:
          rec = json.loads(line.decode("utf-8"))
          records.append((n, rec if isinstance(rec, dict) else
                          ValueError(f"a JSON {type(rec).__name__}, not an object")))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
          records.append((n, e))
  else:
    # Invalid UTF-8 becomes U+FFFD (a path then names no file and its row is rejected; a
    # caption keeps the character, as the pipelines do).
    reader = csv.DictReader(io.StringIO(raw.decode("utf-8", errors="replace"), newline=""),
                            delimiter="\t" if ext == ".tsv" else ",")
    try:
      records = list(enumerate(reader, 2))
    except csv.Error as e:
      raise ValueError(f"{path}: not a readable {ext[1:].upper()} file ({e})") from e
  rows, rejected = [], []
  root = image_root or os.path.dirname(path if "://" in path else os.path.abspath(path))
  for n, rec in records:
    where = f"{os.path.basename(path)}:{n}"
    if isinstance(rec, Exception):
      rejected.append((where, f"unreadable row: {rec}"))
      continue
    if not rec.get(image_column):
      rejected.append((where, f"no {image_column!r} value"))
      continue
    if not isinstance(rec[image_column], str):
      rejected.append((where, f"{image_column!r} is not a path"))
      continue
    texts = []
    for col in caption_columns:
      value = rec.get(col)
      values = value if isinstance(value, list) else [value]
      for v in values:
        if v is None:
          continue
        parts = str(v).split(caption_separator) if caption_separator else [str(v)]
        texts.extend(p.strip() for p in parts if p.strip())
    label = rec.get(label_column) if label_column else None
    try:
      label = None if label in (None, "") else int(label)
    except (TypeError, ValueError):
      rejected.append((where, f"label {label!r} is not an integer"))
      continue
    image_path = os.path.join(root, rec[image_column])
    rows.append({"image_path": image_path, "texts": texts, "label": label,
                 "id": str(rec[id_column]) if id_column and rec.get(id_column) else
                 rec[image_column], "where": where})
  return rows, rejected


def read_folders(root):
  """Class-per-folder: label = index of the sorted class folder, caption = its name."""
  classes = sorted(d.rstrip("/") for d in tf.io.gfile.listdir(root)
                   if tf.io.gfile.isdir(os.path.join(root, d)))
  if not classes:
    raise ValueError(f"{root} has no class folders")
  rows = []
  for label, name in enumerate(classes):
    for fname in sorted(tf.io.gfile.listdir(os.path.join(root, name))):
      if fname.lower().endswith(IMAGE_EXTENSIONS):
        rel = os.path.join(name, fname)
        rows.append({"image_path": os.path.join(root, rel),
                     "texts": [name.replace("_", " ").replace("-", " ")],
                     "label": label, "id": rel, "where": rel})
  return rows, classes


def load_image_bytes(path, max_side=None):
  """(bytes, None) for a readable image, else (None, reason).

  With `max_side`, an image whose longer side exceeds it is shrunk to that side (aspect kept,
  Lanczos) and re-encoded as PNG, so that the input pipeline never decodes a poster-sized file.
  """
  if not tf.io.gfile.exists(path):
    return None, "missing file"
  with tf.io.gfile.GFile(path, "rb") as f:
    data = f.read()
  if not data:
    return None, "empty file"
  try:
    with warnings.catch_warnings():
      # Large images are fine (shrunk with max_side); only Pillow's hard limit rejects one.
      warnings.simplefilter("ignore", Image.DecompressionBombWarning)
      im = Image.open(io.BytesIO(data))
      im.load()
      if im.width < 1 or im.height < 1:
        return None, "image has no pixels"
      shrink = bool(max_side) and max(im.size) > max_side
      if shrink:  # in RGB(A): a palette image would be resized by its nearest palette entry
        alpha = "A" in im.getbands() or "transparency" in im.info
        im = im.convert("RGBA" if alpha else "RGB")
        im.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
      if im.format in KEEP_FORMATS and not shrink:
        return data, None
      out = io.BytesIO()
      im.convert("RGBA" if "A" in im.getbands() else "RGB").save(out, format="PNG")
      return out.getvalue(), None
  except Exception as e:  # pylint: disable=broad-except
    # Without object addresses ("<_io.BytesIO object at 0x7f…>"): a report is reproducible.
    why = re.sub(r"<[^<>]* at 0x[0-9a-f]+>", "the image bytes", str(e))[:80]
    return None, f"unreadable image ({type(e).__name__}: {why})"


def shard_of(example_id, num_shards):
  return int(hashlib.sha1(example_id.encode("utf-8")).hexdigest(), 16) % num_shards


def shard_path(output_dir, prefix, index, num_shards):
  return os.path.join(output_dir, f"{prefix}-{index:05d}-of-{num_shards:05d}.tfrecord")


def encode_row(row):
  """(serialized example, None) for a row with a caption and a readable image, else
  (None, reason). A row may set `max_side` (see `load_image_bytes`)."""
  if not row["texts"]:
    return None, "no caption"
  data, reason = load_image_bytes(row["image_path"], row.get("max_side"))
  if reason:
    return None, reason
  return schema.image_example(data, row["texts"], row["id"], row["label"]), None


def _done_marker(path):
  # Hidden, so that globs such as "train-*" match shards only.
  return os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.done.json")


def finished_shard(path):
  """The report of a shard written completely by an earlier run, or None."""
  marker = _done_marker(path)
  if tf.io.gfile.exists(path) and tf.io.gfile.exists(marker):
    with tf.io.gfile.GFile(marker, "r") as f:
      return json.load(f)
  return None


def write_shard(path, encoded, num_rows):
  """Writes a shard atomically (temporary name, then rename, then its done-marker).

  Args:
    encoded: (where, serialized example or None, rejection reason) per row, in order.
    num_rows: how many rows the shard was given.
  Returns:
    its report: {"shard", "rows", "written", "rejected": [(where, reason)]}.
  """
  written, rejected = 0, []
  tmp = f"{path}.tmp-{os.getpid()}"
  with tf.io.TFRecordWriter(tmp) as writer:
    for where, example, reason in encoded:
      if example is None:
        rejected.append((where, reason))
        continue
      writer.write(example)
      written += 1
  tf.io.gfile.rename(tmp, path, overwrite=True)
  report = {"shard": os.path.basename(path), "rows": num_rows, "written": written,
            "rejected": rejected}
  marker = _done_marker(path)
  with tf.io.gfile.GFile(marker + ".tmp", "w") as f:
    json.dump(report, f)
  tf.io.gfile.rename(marker + ".tmp", marker, overwrite=True)
  return report


def _write_shard(job):
  """Writes one shard (or finds it done); returns its report. Runs in a worker thread."""
  path, rows = job
  done = finished_shard(path)
  if done is not None:
    return dict(done, skipped=True)
  encoded = ((row["where"], *encode_row(row)) for row in rows)
  return dict(write_shard(path, encoded, len(rows)), skipped=False)


def write_report(output_dir, prefix, num_shards, shard_reports, rejected):
  """The conversion's report (also saved as PREFIX.report.json): counts, and every rejected row
  with its reason (`rejected`: those rejected before the shards, then the shards' own)."""
  rejected = list(rejected)
  written, skipped = 0, 0
  for rep in shard_reports:
    written += rep["written"]
    skipped += rep["skipped"]
    rejected.extend(tuple(r) for r in rep["rejected"])
  reasons = collections.Counter(r[1].split(" (")[0] for r in rejected)
  report = {"output_dir": output_dir, "prefix": prefix, "num_shards": num_shards,
            "written": written, "rejected": len(rejected), "rejected_by_reason": dict(reasons),
            "rejected_rows": [list(r) for r in rejected], "shards_skipped_as_done": skipped}
  with tf.io.gfile.GFile(os.path.join(output_dir, f"{prefix}.report.json"), "w") as f:
    json.dump(report, f, indent=2)
  return report


def convert(rows, output_dir, prefix, num_shards, workers=None, pre_rejected=(), quiet=False):
  """Writes `rows` into `num_shards` shards; returns the report dict (also saved as JSON)."""
  tf.io.gfile.makedirs(output_dir)
  rejected = list(pre_rejected)
  seen, unique = set(), []
  for row in rows:
    if row["id"] in seen:
      rejected.append((row["where"], f"duplicate id {row['id']!r}"))
      continue
    seen.add(row["id"])
    unique.append(row)
  shards = collections.defaultdict(list)
  for row in unique:
    shards[shard_of(row["id"], num_shards)].append(row)
  jobs = [(shard_path(output_dir, prefix, i, num_shards), shards.get(i, []))
          for i in range(num_shards)]
  workers = workers or min(len(jobs), os.cpu_count() or 1)
  with tqdm(total=len(unique), unit="img", desc=f"{prefix}: converting", disable=quiet,
            file=sys.stderr) as bar:
    if workers > 1:
      # Threads, not processes: the work is file reads and Pillow's decoding and encoding, which
      # release the GIL; a process pool would start (and import TensorFlow) for seconds first,
      # and re-import the caller's __main__.
      with mp_pool.ThreadPool(workers) as pool:
        results = []
        for rep in pool.imap_unordered(_write_shard, jobs):
          results.append(rep)
          bar.update(rep["rows"])
    else:
      results = []
      for job in jobs:
        results.append(_write_shard(job))
        bar.update(results[-1]["rows"])
  return write_report(output_dir, prefix, num_shards, results, rejected)
