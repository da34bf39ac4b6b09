"""Our EfficientNet-Lite0 export on scikit-image's photos: writes inputs and logits to an .npz.

  .venv/bin/python benchmarks/ports/efficientnet_lite0_ours.py /tmp/lite0_ours.npz

Then compare with an independent PyTorch forward (another venv with torch):
  python benchmarks/ports/efficientnet_lite0_torch.py /tmp/lite0_ours.npz
"""
import sys

import lit_keras  # noqa: F401  (first: pins Keras 2)
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_hub as hub  # noqa: E402
from skimage import data  # noqa: E402

from lit_keras.evaluation import prompts  # noqa: E402
from lit_keras_app.ports import pretrained  # noqa: E402


def main(out):
  paths = pretrained.build(("efficientnet_lite0",))
  clf = hub.KerasLayer(paths["efficientnet_lite0_classification"])
  names = prompts.imagenet1k_classes()
  photos = ["chelsea", "coffee", "astronaut", "rocket"]
  images = tf.concat([tf.image.resize(tf.convert_to_tensor(getattr(data, p)(), tf.float32)[None]
                                      / 255.0, [224, 224]) for p in photos], 0)
  logits = clf(images).numpy()
  probs = tf.nn.softmax(logits).numpy()
  for p, row in zip(photos, probs):
    top = np.argsort(-row)[:3]
    print(p, ", ".join(f"{names[i]} {row[i]:.4f}" for i in top))
  np.savez(out, images=images.numpy(), logits=logits, photos=np.array(photos),
           pth=pretrained.source_files("efficientnet_lite0")[
               "models/efficientnet-lite0-57934424.pth"])


if __name__ == "__main__":
  main(sys.argv[1] if len(sys.argv) > 1 else "/tmp/lite0_ours.npz")
