"""One pass over an evaluation set: every image and every caption embedded by the model, the
work shared by the replicas of a strategy (`sharded.sharded_map`), nothing computed twice."""
import numpy as np
import tensorflow as tf
from tqdm import tqdm

from lit_keras.data import pipeline
from lit_keras.evaluation.sharded import sharded_map


def _thumbnail(data, size):
  """Encoded image bytes → a uint8 [size, size, 3] thumbnail (the evaluation view, shrunk)."""
  image = pipeline.eval_image(data, size)
  return tf.cast(tf.round(tf.clip_by_value(image, 0, 1) * 255), tf.uint8)


def _metadata(file_pattern, embedding_dim, thumbnail_size, progress):
  """Captions, labels and ids of every usable example (and thumbnails), on the host; no model."""
  out = {"texts": [], "owner": [], "labels": [], "ids": [], "thumbs": []}
  examples = pipeline.eval_examples(file_pattern, embedding_dim=embedding_dim)
  keep_thumbs = bool(thumbnail_size and not embedding_dim)
  if keep_thumbs:  # decoded and shrunk in the input pipeline, in parallel
    examples = examples.map(lambda ex: dict(ex, image=_thumbnail(ex["image"], thumbnail_size)),
                            num_parallel_calls=tf.data.AUTOTUNE)
  else:
    examples = examples.map(lambda ex: {k: v for k, v in ex.items() if k != "image"})
  batches = examples.padded_batch(
      256, padding_values={**({"image": tf.constant(0, tf.uint8)} if keep_thumbs else {}),
                           "texts": b"", "num_texts": 0, "label": tf.constant(-1, tf.int64),
                           "id": b""})
  n = 0
  for b in tqdm(batches, desc="reading", unit="batch", disable=not progress):
    for i, (row, k) in enumerate(zip(b["texts"].numpy(), b["num_texts"].numpy())):
      out["texts"] += [t.decode("utf-8", "replace") for t in row[:k]]
      out["owner"] += [n + i] * int(k)
    out["labels"].append(b["label"].numpy())
    out["ids"] += [x.decode() for x in b["id"].numpy()]
    if keep_thumbs:
      out["thumbs"].append(b["image"].numpy())
    n += len(b["label"])
  out["labels"] = np.concatenate(out["labels"]) if out["labels"] else np.zeros([0], np.int64)
  out["thumbs"] = np.concatenate(out["thumbs"]) if out["thumbs"] else np.zeros([0])
  out["owner"] = np.array(out["owner"], np.int64)
  return out, n


def embed_eval_set(model, file_pattern, image_size, batch_size=256, crop_fraction=1.0,
                   embedding_dim=None, thumbnail_size=0, progress=False, strategy=None,
                   jit_compile=None, features=False, texts=True, text_batch_size=None):
  """Embeds an image–text set (or its pre-computed image features, with `embedding_dim`).

  Args:
    model: anything with `encode_image(images)` and `encode_text(texts)` (a `LiTModel`, or an
      exported SavedModel behind the same two methods). A model with a `text_tower` has its
      captions tokenized on the host, so that only numbers reach the accelerator.
    file_pattern: TFRecords of `lit_keras.data.schema`.
    image_size: the resolution the model takes (central crop, resize).
    batch_size: per-replica batch size (images).
    embedding_dim: read the pre-computed-embedding schema instead of images.
    thumbnail_size: also keep uint8 thumbnails of this size (for galleries).
    strategy: the replicas share the images and captions (`sharded_map`); default one device.
    jit_compile: XLA-compile the model's part (what a TPU always does).
    features: also keep the image tower's output before the projection ("image_features";
      needs a model with `image_tower` and `image_head`, e.g. a `LiTModel`). The embeddings are
      then computed from them: the tower runs once.
    texts: embed the captions (False: "text_emb" is empty; e.g. a few-shot training set).
    text_batch_size: per-replica batch size of the captions (default: `batch_size`, at least
      256: a batch of captions is small, and an eager call of the text tower costs about as much
      for 256 captions as for 64).

  Returns:
    a dict of NumPy arrays / lists: "image_emb" [n, d], "text_emb" [m, d] (every caption),
    "owner" [m] (caption → image), "labels" [n], "ids" (n), "texts" (m), "image_features"
    [n, D] with `features`, and "thumbs" uint8
    [n, s, s, 3] if `thumbnail_size` (3 KB an image at 32 px: tens of thousands of images stay in
    memory comfortably).
  """
  out, n = _metadata(file_pattern, embedding_dim, thumbnail_size, progress)
  images = lambda: pipeline.eval_examples(file_pattern, embedding_dim=embedding_dim).map(
      lambda ex: ex["image"])
  prepare = ((lambda x: x) if embedding_dim else
             (lambda data: pipeline.eval_image(data, image_size, crop_fraction)))
  if features:
    if not (hasattr(model, "image_tower") and hasattr(model, "image_head")):
      raise ValueError("image features need a model with an image tower and head (a LiTModel), "
                       f"not {type(model).__name__}")
    feats = sharded_map(lambda x: model.image_tower(x, training=False), images, n, batch_size,
                        prepare=prepare, strategy=strategy, jit_compile=jit_compile)
    out["image_features"] = feats.astype(np.float32)
    out["image_emb"] = np.concatenate(
        [tf.math.l2_normalize(tf.cast(model.image_head(feats[i:i + 4096], training=False),
                                      tf.float32), axis=-1).numpy()
         for i in range(0, len(feats), 4096)]) if n else np.zeros([0])
  else:
    out["image_emb"] = sharded_map(lambda x: model.encode_image(x), images, n, batch_size,
                                   prepare=prepare, strategy=strategy, jit_compile=jit_compile)
  texts = out["texts"] if texts else []
  tower = getattr(model, "text_tower", None)
  out["text_emb"] = sharded_map(
      lambda t: model.encode_text(t), lambda: tf.data.Dataset.from_tensor_slices(
          tf.constant(texts, tf.string) if texts else tf.zeros([0], tf.string)),
      len(texts), text_batch_size or max(batch_size, 256),
      prepare_batch=tower.tokenize if tower is not None else None, strategy=strategy,
      jit_compile=jit_compile)
  return out
