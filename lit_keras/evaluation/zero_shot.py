"""Zero-shot classification: compare image embeddings with prompt-ensembled class embeddings."""
import numpy as np
import tensorflow as tf


def class_embeddings(model, class_names, templates, batch_size=256):
  """One L2-normalised embedding per class: the mean of its normalised prompt embeddings.

  Each class name (or each alias, if a class is given as a list of names) is put into every
  template; the normalised text embeddings are averaged and re-normalised (CLIP's ensemble).
  Returns float32 [num_classes, d].
  """
  prompts, owner = [], []
  for c, names in enumerate(class_names):
    for name in ([names] if isinstance(names, str) else names):
      for t in templates:
        prompts.append(t.format(name))
        owner.append(c)
  embs = np.concatenate([model.encode_text(tf.constant(prompts[i:i + batch_size])).numpy()
                         for i in range(0, len(prompts), batch_size)])
  owner = np.asarray(owner)
  out = np.stack([embs[owner == c].mean(0) for c in range(len(class_names))])
  return (out / np.linalg.norm(out, axis=1, keepdims=True)).astype(np.float32)


def zero_shot_accuracy(model, images, labels, class_emb, batch_size=256, topk=(1, 5),
                       image_emb=None):
  """Top-k accuracies of images against class embeddings (one matmul per batch).

  Pass `image_emb` (L2-normalised [n, d]) instead of `images` to reuse computed embeddings.
  Returns ({"top1": …, "top5": …}, top-1 predictions).
  """
  labels = np.asarray(labels)
  hits = {k: 0 for k in topk}
  preds = []
  for i in range(0, len(labels), batch_size):
    emb = (image_emb[i:i + batch_size] if image_emb is not None
           else model.encode_image(images[i:i + batch_size]).numpy())
    scores = emb @ class_emb.T
    order = np.argsort(-scores, axis=1)
    y = labels[i:i + batch_size, None]
    for k in topk:
      hits[k] += int((order[:, :k] == y).any(axis=1).sum())
    preds.append(order[:, 0])
  metrics = {f"top{k}": hits[k] / len(labels) for k in topk}
  return metrics, np.concatenate(preds)
