"""Export a trained LiT model as a SavedModel with serving signatures (`lit-keras-export`).

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
import numpy as np
import tensorflow as tf

from lit_keras.data import preprocess
from lit_keras.evaluation import zero_shot


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
  """Writes the serving SavedModel; returns the `LiTServing` module.

  Args:
    model: a `LiTModel` (with its real image tower).
    output_dir: where the SavedModel goes (any `tf.io.gfile` path).
    image_size: the resolution the image tower takes.
    class_names: optional class list for the `zero_shot` signature (items: names or alias
      lists); its prompt-ensembled embeddings are computed now and stored.
    templates: prompt templates for the class embeddings.
    crop_fraction: central crop fraction of the image signatures.
  """
  class_emb = None
  if class_names:
    class_emb = zero_shot.class_embeddings(model, class_names, templates)
  names = [n if isinstance(n, str) else n[0] for n in class_names or []]
  module = LiTServing(model, image_size, names, class_emb, crop_fraction)
  signatures = {"embed_image": module.embed_image, "embed_image_tensor": module.embed_image_tensor,
                "embed_image_float": module.embed_image_float, "embed_text": module.embed_text}
  if class_emb is not None:
    signatures["zero_shot"] = module.zero_shot
  tf.saved_model.save(module, output_dir, signatures=signatures)
  return module
