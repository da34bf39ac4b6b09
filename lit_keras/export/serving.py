"""Export a trained LiT model as a SavedModel with serving signatures.

    python -m lit_keras.export.serving --workdir workdirs/demo --output exports/demo \
        [--classes emoji-subcategories | imagenet1k | path/to/classes.txt] [--templates default|clip|FILE]

Signatures (L2-normalised embeddings out):
- `embed_image`: encoded image bytes `string [b]` → `embeddings [b, d]` (decode, central crop,
  resize inside);
- `embed_image_tensor`: `uint8 [b, h, w, 3]` (any size) → embeddings;
- `embed_image_float`: `float32 [b, h, w, 3]` in [0, 1] (any size) → embeddings;
- `embed_text`: `string [b]` → embeddings (tokenisation inside);
- `zero_shot`: `uint8 [b, h, w, 3]` → `probabilities [b, n_classes]`, `embeddings`, for the class
  list (prompt-ensembled) baked in at export time; `class_names` is stored with the model.
The SavedModel loads in a process that imports only `tensorflow` and `tensorflow_text`.
"""
import argparse
import json
import os
import sys

import numpy as np
import tensorflow as tf

from lit_keras.data import preprocess


class LiTServing(tf.Module):
  """Wraps a `LiTModel` with its preprocessing and, optionally, zero-shot class embeddings."""

  def __init__(self, model, image_size, class_names=None, class_embeddings=None,
               crop_fraction=1.0):
    super().__init__()
    self.model = model
    self.image_size = int(image_size)
    self.crop_fraction = float(crop_fraction)
    self.logit_scale = tf.Variable(float(model.logit_scale(None)["logit_scale"]),
                                   trainable=False)
    if class_embeddings is not None:
      self.class_embeddings = tf.Variable(np.asarray(class_embeddings, np.float32),
                                          trainable=False)
      self.class_names = tf.Variable(list(class_names), trainable=False, dtype=tf.string)
      # Only a module with classes has (and traces) a zero-shot function.
      self.zero_shot = tf.function(self._zero_shot, input_signature=[
          tf.TensorSpec([None, None, None, 3], tf.uint8)])

  def _prepare(self, image):
    return preprocess.central_crop_resize(image, self.image_size, self.crop_fraction)

  def _embed_float(self, images):
    images = tf.map_fn(self._prepare, images,
                       fn_output_signature=tf.TensorSpec([self.image_size, self.image_size, 3],
                                                         tf.float32))
    return self.model.encode_image(images, training=False)

  @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
  def embed_image(self, encoded):
    def decode(data):
      image, _ = preprocess.decode_image(data)
      return self._prepare(image)
    images = tf.map_fn(decode, encoded, fn_output_signature=tf.TensorSpec(
        [self.image_size, self.image_size, 3], tf.float32))
    return {"embeddings": self.model.encode_image(images, training=False)}

  @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8)])
  def embed_image_tensor(self, images):
    return {"embeddings": self._embed_float(tf.image.convert_image_dtype(images, tf.float32))}

  @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)])
  def embed_image_float(self, images):
    return {"embeddings": self._embed_float(images)}

  @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
  def embed_text(self, texts):
    return {"embeddings": self.model.encode_text(texts, training=False)}

  def _zero_shot(self, images):
    emb = self._embed_float(tf.image.convert_image_dtype(images, tf.float32))
    logits = self.logit_scale * tf.matmul(emb, self.class_embeddings, transpose_b=True)
    return {"probabilities": tf.nn.softmax(logits), "embeddings": emb}


def export(model, output_dir, image_size, class_names=None, templates=("{}",),
           crop_fraction=1.0):
  """Writes the serving SavedModel; returns the `LiTServing` module."""
  from lit_keras import evaluation  # pylint: disable=g-import-not-at-top
  class_emb = None
  if class_names:
    class_emb = evaluation.class_embeddings(model, class_names, templates)
  names = [n if isinstance(n, str) else n[0] for n in class_names or []]
  module = LiTServing(model, image_size, names, class_emb, crop_fraction)
  signatures = {"embed_image": module.embed_image, "embed_image_tensor": module.embed_image_tensor,
                "embed_image_float": module.embed_image_float, "embed_text": module.embed_text}
  if class_emb is not None:
    signatures["zero_shot"] = module.zero_shot
  tf.saved_model.save(module, output_dir, signatures=signatures)
  return module


def _class_list(spec, config):
  from lit_keras import assets  # pylint: disable=g-import-not-at-top
  if not spec:
    return None
  if spec == "imagenet1k":
    return assets.imagenet1k_classes()
  if spec == "emoji-subcategories":
    from lit_keras.datasets import emoji  # pylint: disable=g-import-not-at-top
    return emoji.subcategories(os.path.dirname(config.data.eval or config.data.train))
  with open(spec, encoding="utf-8") as f:
    return [line.strip() for line in f if line.strip()]


def _templates(spec):
  from lit_keras import assets  # pylint: disable=g-import-not-at-top
  if spec == "clip":
    return assets.clip_templates()
  if spec == "default":
    return ["{}", "a photo of a {}.", "an emoji of {}."]
  with open(spec, encoding="utf-8") as f:
    return [line.strip() for line in f if line.strip()]


def main(argv=None):
  os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
  import ml_collections  # pylint: disable=g-import-not-at-top
  from lit_keras.training import trainer  # pylint: disable=g-import-not-at-top
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--workdir", required=True)
  p.add_argument("--output", required=True)
  p.add_argument("--classes", default=None)
  p.add_argument("--templates", default="default")
  a = p.parse_args(argv)
  with open(os.path.join(a.workdir, "config.json")) as f:
    config = ml_collections.ConfigDict(json.load(f))
  model, step, _ = trainer.restore_model(config, a.workdir)
  export(model, a.output, config.image.image_size, _class_list(a.classes, config),
         _templates(a.templates), config.data.get("crop_fraction", 1.0))
  print(f"exported step {step} to {a.output}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
