"""Human-friendly outputs: a confusion-matrix PNG and a retrieval gallery (HTML)."""
import base64
import html
import io

import numpy as np
import tensorflow as tf


def confusion_matrix(labels, preds, num_classes):
  cm = np.zeros((num_classes, num_classes), np.int64)
  np.add.at(cm, (np.asarray(labels), np.asarray(preds)), 1)
  return cm


def per_class_accuracy(cm):
  totals = cm.sum(1)
  with np.errstate(invalid="ignore", divide="ignore"):
    return np.where(totals > 0, np.diag(cm) / totals, np.nan)


def plot_confusion(cm, class_names, path, title="", max_classes=40):
  """Row-normalised confusion matrix; with many classes, the `max_classes` most frequent."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  keep = np.argsort(-cm.sum(1))[:max_classes]
  keep = np.sort(keep[cm.sum(1)[keep] > 0])
  sub = cm[np.ix_(keep, keep)].astype(np.float64)
  sub = sub / np.maximum(sub.sum(1, keepdims=True), 1)
  n = len(keep)
  fig, ax = plt.subplots(figsize=(4 + 0.22 * n, 3.5 + 0.22 * n), dpi=100)
  im = ax.imshow(sub, cmap="Blues", vmin=0, vmax=1)
  names = [class_names[i][:24] for i in keep]
  ax.set_xticks(range(n), names, rotation=90, fontsize=7)
  ax.set_yticks(range(n), names, fontsize=7)
  ax.set_xlabel("predicted")
  ax.set_ylabel("true")
  ax.set_title(title, fontsize=9)
  fig.colorbar(im, ax=ax, fraction=0.03)
  fig.tight_layout()
  buf = io.BytesIO()
  fig.savefig(buf, format="png")
  with tf.io.gfile.GFile(path, "wb") as f:
    f.write(buf.getvalue())
  plt.close(fig)
  return path


def _thumb(image, size=64):
  from PIL import Image  # pylint: disable=g-import-not-at-top
  arr = np.asarray(image)
  if arr.dtype != np.uint8:
    arr = (np.clip(arr.astype(np.float32), 0, 1) * 255).round().astype(np.uint8)
  im = Image.fromarray(arr).resize((size, size))
  buf = io.BytesIO()
  im.save(buf, format="PNG")
  return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def retrieval_gallery(path, title, text_queries, images, image_emb, text_emb, image_captions,
                      query_ids, k=5):
  """HTML: for each caption query, its top-k images; for each image query, its top-k captions.

  `image_captions[i]` is image i's first caption (shown as ground truth); the true match is
  outlined in green.
  """
  rows = [f"<html><head><meta charset='utf-8'><title>{html.escape(title)}</title></head>",
          "<body style='font-family:sans-serif'>", f"<h2>{html.escape(title)}</h2>",
          "<h3>text → image</h3><table>"]
  for q, target in query_ids:
    scores = image_emb @ text_emb[q]
    top = np.argsort(-scores)[:k]
    cells = "".join(
        f"<td style='text-align:center'><img src='{_thumb(images[i])}' "
        f"style='border:3px solid {'#2a2' if i == target else '#ddd'}'><br>{scores[i]:.2f}</td>"
        for i in top)
    rows.append(f"<tr><td><b>{html.escape(text_queries[q])}</b></td>{cells}</tr>")
  rows.append("</table><h3>image → text</h3><table>")
  for _, target in query_ids:
    scores = text_emb @ image_emb[target]
    top = np.argsort(-scores)[:k]
    items = "".join(f"<li>{html.escape(text_queries[j])} ({scores[j]:.2f})</li>" for j in top)
    rows.append(f"<tr><td><img src='{_thumb(images[target])}'><br>"
                f"<i>{html.escape(image_captions[target])}</i></td><td><ol>{items}</ol></td></tr>")
  rows.append("</table></body></html>")
  with tf.io.gfile.GFile(path, "w") as f:
    f.write("\n".join(rows))
  return path
