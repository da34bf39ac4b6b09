"""Image↔text retrieval with several captions per image (the COCO protocol)."""
import numpy as np


def recall_at_k(image_emb, text_emb, text_to_image, ks=(1, 5, 10), chunk=1024):
  """Recall@k both ways, every caption counted.

  Args:
    image_emb: [n_images, d] L2-normalised.
    text_emb: [n_texts, d] L2-normalised.
    text_to_image: [n_texts] index of each caption's image.
    ks: the k's.
    chunk: rows scored per matmul (memory stays bounded for tens of thousands of items).

  Returns:
    {"i2t_r@k": fraction of images whose top-k captions contain one of their own,
     "t2i_r@k": fraction of captions whose top-k images contain their image}.
  """
  text_to_image = np.asarray(text_to_image)
  n_img = len(image_emb)
  kmax = max(ks)
  # Text → image: the rank of the true image among all images.
  t2i_rank = np.empty(len(text_emb), np.int64)
  for s in range(0, len(text_emb), chunk):
    scores = text_emb[s:s + chunk] @ image_emb.T
    true = scores[np.arange(len(scores)), text_to_image[s:s + chunk]]
    t2i_rank[s:s + chunk] = (scores > true[:, None]).sum(1)
  # Image → text: the best rank among the image's own captions.
  i2t_rank = np.full(n_img, np.iinfo(np.int64).max)
  for s in range(0, n_img, chunk):
    scores = image_emb[s:s + chunk] @ text_emb.T  # [c, n_texts]
    top = np.argsort(-scores, axis=1)[:, :kmax]
    for row, idx in enumerate(top):
      hits = np.nonzero(text_to_image[idx] == s + row)[0]
      if len(hits):
        i2t_rank[s + row] = hits[0]
  out = {}
  for k in ks:
    out[f"i2t_r@{k}"] = float((i2t_rank < k).mean())
    out[f"t2i_r@{k}"] = float((t2i_rank < k).mean())
  return out
