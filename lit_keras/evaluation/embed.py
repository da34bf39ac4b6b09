"""One pass over an evaluation set: every image and every caption embedded by the model."""
import numpy as np
import tensorflow as tf
from tqdm import tqdm

from lit_keras.data import pipeline


def embed_eval_set(model, file_pattern, image_size, batch_size=256, crop_fraction=1.0,
                   embedding_dim=None, thumbnail_size=0, progress=False):
  """Embeds an image–text set (or its pre-computed image features, with `embedding_dim`).

  Args:
    model: anything with `encode_image(images)` and `encode_text(strings)` (a `LiTModel`, or an
      exported SavedModel behind the same two methods).
    file_pattern: TFRecords of `lit_keras.data.schema`.
    image_size: the resolution the model takes (central crop, resize).
    embedding_dim: read the pre-computed-embedding schema instead of images.
    thumbnail_size: also keep uint8 thumbnails of this size (for galleries).

  Returns:
    a dict of NumPy arrays / lists: "image_emb" [n, d], "text_emb" [m, d] (every caption),
    "owner" [m] (caption → image), "labels" [n], "ids" (n), "texts" (m), and "thumbs" uint8
    [n, s, s, 3] if `thumbnail_size` (3 KB an image at 32 px: tens of thousands of images stay in
    memory comfortably).
  """
  out = {k: [] for k in ("image_emb", "text_emb", "owner", "labels", "ids", "texts", "thumbs")}
  n = 0
  batches = pipeline.eval_dataset(file_pattern, batch_size, image_size,
                                  crop_fraction=crop_fraction, embedding_dim=embedding_dim)
  for b in tqdm(batches, desc="embedding", unit="batch", disable=not progress):
    out["image_emb"].append(np.asarray(model.encode_image(b["image"])))
    texts = [t for row, k in zip(b["texts"].numpy(), b["num_texts"].numpy()) for t in row[:k]]
    out["owner"] += [n + i for i, k in enumerate(b["num_texts"].numpy()) for _ in range(k)]
    for s in range(0, len(texts), batch_size):
      out["text_emb"].append(np.asarray(model.encode_text(tf.constant(texts[s:s + batch_size]))))
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
