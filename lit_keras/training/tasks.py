"""Dataset-specific glue for train.py / evaluate.py: defaults, validation, input and eval fns.

`resolve` fills what a config leaves empty from its `dataset` (building the offline data and the
pretrained towers into the cache when needed), runs the image-embedding pre-computation when
`config.precompute.enabled`, and validates: setting string, loss, paths present, batch size.
"""
import os

import numpy as np
import tensorflow as tf

from lit_keras import evaluation
from lit_keras import towers
from lit_keras.convert import pretrained
from lit_keras.data import pipeline
from lit_keras.datasets import digits
from lit_keras.training import builders

DATASETS = ("digits", "emoji", "custom")


def _cache(config):
  return config.get("cache_dir") or pretrained.default_cache_dir()


def resolve(config, workdir):
  """Returns a resolved (still locked) copy of `config`; raises ValueError naming bad fields."""
  config = config.copy_and_resolve_references()
  if config.dataset not in DATASETS:
    raise ValueError(f"config.dataset={config.dataset!r}: expected one of {DATASETS}")
  img_state, txt_state = towers.parse_setting(config.setting)
  if config.loss not in ("softmax", "sigmoid"):
    raise ValueError(f"config.loss={config.loss!r}: expected 'softmax' or 'sigmoid'")
  if config.batch_size <= 0 or config.total_steps <= 0:
    raise ValueError("config.batch_size and config.total_steps must be positive")
  cache = _cache(config)
  with config.unlocked():
    if config.dataset == "digits":
      data_dir = os.path.join(cache, "data", "digits")
      if not tf.io.gfile.glob(os.path.join(data_dir, "train-*.tfrecord")):
        digits.build(data_dir)
      assets = digits.prepare(os.path.join(cache, "data", "digits_assets"))
      config.data.train = config.data.train or os.path.join(data_dir, "train-*.tfrecord")
      config.data.eval = config.data.eval or os.path.join(data_dir, "test-*.tfrecord")
      config.image.handle = config.image.handle or assets["image_handle"]
      config.text.vocab = config.text.vocab or assets["vocab"]
    elif config.dataset == "emoji":
      from lit_keras.datasets import emoji  # pylint: disable=g-import-not-at-top
      data_dir = config.data.get("dir") or os.path.join(cache, "data", "emoji")
      if not tf.io.gfile.exists(os.path.join(data_dir, "summary.json")):
        emoji.build(data_dir, cache)
      config.data.train = config.data.train or os.path.join(data_dir, "google-train-*.tfrecord")
      config.data.eval = config.data.eval or os.path.join(data_dir,
                                                          "google-heldout-*.tfrecord")
      needs_text_hub = txt_state != towers.SCRATCH and not config.text.encoder
      needs_vocab = txt_state == towers.SCRATCH and not config.text.vocab and not config.text.get(
          "sentencepiece_model")
      needs_image = img_state != towers.SCRATCH and not config.image.handle
      if needs_text_hub or needs_vocab or needs_image:
        paths = pretrained.build(cache_dir=cache)
        if needs_image:
          config.image.handle = paths["efficientnet_lite0_feature_vector"]
        if needs_text_hub:
          config.text.preprocess = paths["minilm_l6_preprocess"]
          config.text.encoder = paths["minilm_l6_encoder"]
        if needs_vocab:  # a real WordPiece vocabulary for the from-scratch text tower
          config.text.vocab = pretrained.source_files("minilm_l6")["model/vocab.txt"]
    if not config.image.get("output_key"):
      config.image.output_key = None
  _check_path(config.image.handle, "config.image.handle", img_state != towers.SCRATCH)
  if txt_state == towers.SCRATCH:
    _check_path(config.text.get("sentencepiece_model") or config.text.vocab,
                "config.text.vocab", True)
  else:
    _check_path(config.text.preprocess, "config.text.preprocess", True)
    _check_path(config.text.encoder, "config.text.encoder", True)
  if not config.data.train:
    raise ValueError("config.data.train is empty")
  pipeline.list_files(config.data.train)  # raises naming the pattern if nothing matches
  if config.precompute.enabled:
    from lit_keras.training import precompute  # pylint: disable=g-import-not-at-top
    if img_state != towers.LOCKED:
      raise ValueError("config.precompute.enabled needs a locked image tower (setting 'L?')")
    out_dir, dim, _ = precompute.precompute(builders.image_source(config), config.data.train,
                                            cache)
    with config.unlocked():
      config.precompute.dim = dim
      config.precompute.train = os.path.join(out_dir, "emb-*.tfrecord")
      config.precompute.eval = ""
      if config.data.eval:  # in-training evaluation reads embeddings too
        eval_dir, _, _ = precompute.precompute(builders.image_source(config), config.data.eval,
                                               cache)
        config.precompute.eval = os.path.join(eval_dir, "emb-*.tfrecord")
  return config


def _check_path(value, field, needed):
  if not needed:
    return
  if not value:
    raise ValueError(f"{field} is empty but the setting needs it")
  if "://" not in value and not value.startswith("gs:") and not tf.io.gfile.exists(value):
    raise ValueError(f"{field}={value!r} does not exist")


def validate_replicas(config, strategy):
  if config.batch_size % strategy.num_replicas_in_sync:
    raise ValueError(f"config.batch_size={config.batch_size} is not divisible by the "
                     f"{strategy.num_replicas_in_sync} replicas")


def train_dataset_fn(config):
  """`(input_context, seed, start_step) -> per-replica tf.data.Dataset` for the trainer."""
  pre = config.precompute.enabled
  tokenize = []

  def fn(ctx, seed, start_step=0):
    # Built on first use, i.e. after the trainer has seeded TF: `tf.random.set_seed` drops
    # kernel-held resources such as a SentencePiece model created before it.
    if not tokenize:
      fn_ = builders.build_tokenize_fn(config.text, config.setting[1])
      fn_(tf.constant(["warm up"]))  # create its resources eagerly, not inside the map's trace
      tokenize.append(fn_)
    per_replica = ctx.get_per_replica_batch_size(config.batch_size)
    return pipeline.train_dataset(
        config.precompute.train if pre else config.data.train, per_replica,
        config.image.image_size,
        tokenize[0], input_context=ctx, seed=seed,
        embedding_dim=config.precompute.dim if pre else None,
        skip_corrupt=config.data.get("skip_corrupt", False),
        shuffle_buffer=config.data.get("shuffle_buffer", 10_000),
        augment=config.data.get("augment", True),
        crop_fraction=config.data.get("crop_fraction", 1.0),
        skip_examples=start_step * per_replica)

  return fn


def embed_eval_set(model, file_pattern, image_size, batch_size=256, crop_fraction=1.0,
                   embedding_dim=None, thumbnail_size=0, progress=False):
  """One pass over an eval set. Returns a dict of NumPy arrays / lists:

  "image_emb" [n, d], "text_emb" [m, d] (every caption), "owner" [m] (caption → image),
  "labels" [n], "ids" (n), "texts" (m), and "thumbs" uint8 [n, s, s, 3] if `thumbnail_size`
  (3 KB an image at 32 px: tens of thousands of images stay in memory comfortably).
  """
  from tqdm import tqdm  # pylint: disable=g-import-not-at-top
  out = {k: [] for k in ("image_emb", "text_emb", "owner", "labels", "ids", "texts", "thumbs")}
  n = 0
  batches = pipeline.eval_dataset(file_pattern, batch_size, image_size,
                                  crop_fraction=crop_fraction, embedding_dim=embedding_dim)
  for b in tqdm(batches, desc="embedding", unit="batch", disable=not progress):
    out["image_emb"].append(model.encode_image(b["image"]).numpy())
    texts = [t for row, k in zip(b["texts"].numpy(), b["num_texts"].numpy()) for t in row[:k]]
    out["owner"] += [n + i for i, k in enumerate(b["num_texts"].numpy()) for _ in range(k)]
    for s in range(0, len(texts), batch_size):
      out["text_emb"].append(model.encode_text(tf.constant(texts[s:s + batch_size])).numpy())
    out["texts"] += [t.decode("utf-8", "replace") for t in texts]
    out["labels"].append(b["label"].numpy())
    out["ids"] += [x.decode() for x in b["id"].numpy()]
    if thumbnail_size and not embedding_dim:
      thumbs = tf.image.resize(b["image"], [thumbnail_size] * 2, antialias=True)
      out["thumbs"].append(tf.cast(tf.round(tf.clip_by_value(thumbs, 0, 1) * 255),
                                   tf.uint8).numpy())
    n += len(b["label"])
  for k in ("image_emb", "text_emb", "labels", "thumbs"):
    out[k] = np.concatenate(out[k]) if out[k] else np.zeros([0])
  out["owner"] = np.array(out["owner"])
  return out


def eval_fn(config):
  """`model -> metrics` on the config's eval split (zero-shot for digits, retrieval always)."""
  if not config.data.get("eval"):
    return None

  pre = config.precompute.enabled

  def fn(model):
    e = embed_eval_set(
        model, config.precompute.eval if pre else config.data.eval, config.image.image_size,
        crop_fraction=config.data.get("crop_fraction", 1.0),
        embedding_dim=config.precompute.dim if pre else None)
    out = {k: v for k, v in evaluation.recall_at_k(e["image_emb"], e["text_emb"],
                                                   e["owner"]).items() if k.endswith("@1")}
    classes = None
    if config.dataset == "digits":
      classes, templates = digits.CLASS_NAMES, digits.TEMPLATES
    elif config.dataset == "emoji":
      from lit_keras.datasets import emoji  # pylint: disable=g-import-not-at-top
      classes = emoji.subcategories(os.path.dirname(config.data.eval))
      templates = ["{}"]
    if classes is not None:
      cls = evaluation.class_embeddings(model, classes, templates)
      out["zero_shot_top1"] = float(((e["image_emb"] @ cls.T).argmax(1) == e["labels"]).mean())
    return out

  return fn
