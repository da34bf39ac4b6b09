"""LiTModel: two towers, two projection heads, a learned temperature. No logits, no devices."""
import math

import tensorflow as tf
import tf_keras

from lit_keras import serialization
from lit_keras.layers.logit_scale import LogitScale
from lit_keras.layers.projection_head import ProjectionHead


@serialization.register
class LiTModel(tf_keras.Model):
  """The LiT dual encoder (Zhai et al., 2022).

  Takes the towers as instances (any `lit_keras.towers.Tower`), maps each through a projection
  head to the shared `embed_dim` and L2-normalises. Its state is named by the paper's two letters,
  image tower first (`model.setting`, e.g. "Lu"). The model knows nothing about devices or the
  loss: it returns embeddings and the temperature; the losses in `lit_keras.losses` gather across
  replicas and form the logits.

  Call: `model({"image": images, "text": texts})` → dict with
    "zimg" [b, embed_dim] and "ztxt" [b, embed_dim] (L2-normalised, float32),
    "logit_scale" (exp of the learned temperature), "logit_bias" (if `use_bias`),
    "img/norm" and "txt/norm" (mean pre-normalisation norms, for monitoring).
  `images` are float [b, H, W, 3] in [0, 1] (or pre-computed features for a
  `PrecomputedImageTower`); `texts` are strings [b] or the tokenized BERT dict.

  Args:
    image_tower: a tower instance producing [b, D_img] features.
    text_tower: a tower instance producing [b, D_txt] features.
    embed_dim: size of the shared embedding space.
    head_hidden_dims: hidden sizes of MLP projection heads (empty = linear, the LiT default).
    init_log_scale: initial log temperature (LiT: log 10).
    use_bias: add a learned logit bias (needed by the sigmoid loss).
    init_bias: its initial value (SigLIP: -10).
  """

  def __init__(self, image_tower, text_tower, embed_dim=128, head_hidden_dims=(),
               init_log_scale=math.log(10.0), use_bias=False, init_bias=-10.0, **kwargs):
    super().__init__(**kwargs)
    if isinstance(image_tower, dict):
      image_tower = tf_keras.layers.deserialize(image_tower)
    if isinstance(text_tower, dict):
      text_tower = tf_keras.layers.deserialize(text_tower)
    self.image_tower = image_tower
    self.text_tower = text_tower
    self.embed_dim = int(embed_dim)
    self.head_hidden_dims = tuple(int(d) for d in head_hidden_dims)
    self.init_log_scale = float(init_log_scale)
    self.use_bias = bool(use_bias)
    self.init_bias = float(init_bias)
    self.image_head = ProjectionHead(self.embed_dim, self.head_hidden_dims, name="image_head")
    self.text_head = ProjectionHead(self.embed_dim, self.head_hidden_dims, name="text_head")
    self.logit_scale = LogitScale(self.init_log_scale, use_bias=self.use_bias,
                                  init_bias=self.init_bias, name="logit_scale")

  @property
  def setting(self):
    """The paper's two-letter name of this model's state, e.g. "Lu"."""
    return self.image_tower.state + self.text_tower.state

  def _embed(self, tower, head, inputs, training):
    features = tower(inputs, training=training)
    z = tf.cast(head(features, training=training), tf.float32)
    norm = tf.norm(z, axis=-1)
    return tf.math.l2_normalize(z, axis=-1), norm

  def encode_image(self, images, training=False):
    """L2-normalised image embeddings [b, embed_dim]."""
    return self._embed(self.image_tower, self.image_head, images, training)[0]

  def encode_text(self, texts, training=False):
    """L2-normalised text embeddings [b, embed_dim]; `texts` are strings or tokenized inputs."""
    return self._embed(self.text_tower, self.text_head, texts, training)[0]

  def call(self, inputs, training=None):
    if not isinstance(inputs, dict) or "image" not in inputs or "text" not in inputs:
      raise ValueError("LiTModel takes a dict with keys 'image' and 'text'")
    zimg, img_norm = self._embed(self.image_tower, self.image_head, inputs["image"], training)
    ztxt, txt_norm = self._embed(self.text_tower, self.text_head, inputs["text"], training)
    out = {"zimg": zimg, "ztxt": ztxt, "img/norm": tf.reduce_mean(img_norm),
           "txt/norm": tf.reduce_mean(txt_norm)}
    out.update(self.logit_scale(None))
    return out

  def get_config(self):
    return {
        "name": self.name,
        "image_tower": tf_keras.layers.serialize(self.image_tower),
        "text_tower": tf_keras.layers.serialize(self.text_tower),
        "embed_dim": self.embed_dim,
        "head_hidden_dims": list(self.head_hidden_dims),
        "init_log_scale": self.init_log_scale,
        "use_bias": self.use_bias,
        "init_bias": self.init_bias,
    }

  @classmethod
  def from_config(cls, config):
    return cls(**config)
