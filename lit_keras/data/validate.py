"""Scan TFRecord shards and report what is in them (the `lit-keras-validate` program).

Per shard and in total: records, decodable images, caption statistics (captions per image, empty
captions, characters), labels, and corrupt records with their file and byte offset.
"""
import collections
import re

import tensorflow as tf

from lit_keras.data import preprocess
from lit_keras.data import schema


def validate(files, embedding_dim=None):
  """Returns a report dict: totals, caption statistics, labels, per-shard stats, corrupt shards
  (file, byte offset, records before the damage)."""

  def check(record):
    ex = schema.parse(record, embedding_dim)
    texts = preprocess.clean_texts(ex[schema.TEXTS])
    if embedding_dim:
      ok = tf.reduce_all(tf.math.is_finite(ex[schema.EMBEDDING]))
    else:
      ok = preprocess.decode_image(ex[schema.IMAGE])[1]
    return {"ok": ok, "num_texts": tf.size(texts),
            "empty_texts": tf.reduce_sum(tf.cast(tf.strings.length(texts) == 0, tf.int32)),
            "chars": tf.reduce_sum(tf.strings.length(texts, unit="UTF8_CHAR")),
            "label": ex[schema.LABEL]}

  total = collections.Counter()
  labels = collections.Counter()
  shards, corrupt = [], []
  for f in files:
    stats = collections.Counter()
    try:
      for r in tf.data.TFRecordDataset(f).map(check).batch(256):
        stats["records"] += len(r["ok"])
        stats["decodable"] += int(tf.reduce_sum(tf.cast(r["ok"], tf.int32)))
        stats["captions"] += int(tf.reduce_sum(r["num_texts"]))
        stats["empty_captions"] += int(tf.reduce_sum(r["empty_texts"]))
        stats["no_caption"] += int(tf.reduce_sum(tf.cast(r["num_texts"] == 0, tf.int32)))
        stats["caption_chars"] += int(tf.reduce_sum(r["chars"]))
        labels.update(int(x) for x in r["label"].numpy())
    except (tf.errors.DataLossError, tf.errors.InvalidArgumentError) as e:
      msg = e.message.split("\n")[0]
      m = re.search(r"at (\d+)", msg)
      corrupt.append({"file": f, "offset": int(m.group(1)) if m else None, "error": msg,
                      "records_before": stats["records"]})
    shards.append({"file": f, **stats})
    total.update(stats)
  n = max(total["records"], 1)
  return {
      "files": len(files), "records": total["records"], "decodable": total["decodable"],
      "undecodable": total["records"] - total["decodable"],
      "captions_per_record": total["captions"] / n,
      "empty_captions": total["empty_captions"], "records_without_caption": total["no_caption"],
      "mean_caption_chars": total["caption_chars"] / max(total["captions"], 1),
      "labels": {str(k): v for k, v in sorted(labels.items())},
      "corrupt": corrupt, "shards": shards,
  }
