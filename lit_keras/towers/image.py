"""Image towers: any TF-Hub image feature-vector module, or a ViT trained from scratch."""
import tensorflow as tf
import tf_keras

from lit_keras import serialization
from lit_keras.data import preprocess
from lit_keras.layers import activations
from lit_keras.towers import base
from lit_keras.towers import recompute as recompute_lib


@serialization.register
class HubImageTower(base.Tower):
  """A pretrained image feature-vector module from a TF-Hub handle or a local SavedModel path.

  Works with any module of the TF2 hub image convention — `[batch, H, W, 3]` floats in, pooled
  features `[batch, D]` out: ViT (sayakpaul/vit_*_fe, input [-1, 1]), BiT (google/bit/*, [0, 1]),
  EfficientNet (tensorflow/efficientnet/*/feature-vector, [0, 1]), ResNet, or a SavedModel of
  your own. The tower always takes images in [0, 1] and maps them to `value_range` itself, so the
  data pipeline is the same for every module. Its config stores the handle, never the weights.

  Args:
    handle: tfhub.dev / Kaggle handle, URL, or local SavedModel directory.
    state: "L" (locked, default) or "U" (fine-tuned). A hub module is pretrained by definition;
      for "u" use a tower built from scratch (e.g. `ViTImageTower`).
    image_size: the square input resolution the module expects; the data pipeline and the
      export signatures resize to it.
    value_range: (low, high) the module expects its pixels in.
    output_key: key to pick when the module returns a dict.
  """

  allowed_states = (base.LOCKED, base.UNLOCKED)

  def __init__(self, handle, state=base.LOCKED, image_size=224, value_range=(0.0, 1.0),
               output_key=None, **kwargs):
    kwargs["dtype"] = "float32"  # a hub SavedModel's signatures are float32 (even under bf16)
    super().__init__(state=state, **kwargs)
    self.handle = handle
    self.image_size = int(image_size)
    self.value_range = (float(value_range[0]), float(value_range[1]))
    self.output_key = output_key
    self.module = base.hub_layer(handle, trainable=not self.locked, output_key=output_key,
                                 name="module", dtype="float32")

  def encode(self, images, training=None):
    images = preprocess.to_range(tf.cast(images, tf.float32), self.value_range)
    return self.module(images, training=training)

  def get_config(self):
    config = super().get_config()
    config.update(handle=self.handle, image_size=self.image_size,
                  value_range=list(self.value_range), output_key=self.output_key)
    return config


@serialization.register
class ViTImageTower(base.Tower):
  """A Vision Transformer image tower trained from scratch (the paper's "u" image state).

  Built from tf-models-official's `VisionTransformer` backbone; the pooled output is the class
  token ("token") or the mean of the patch tokens ("gap").

  Args:
    image_size: square input resolution.
    patch_size, hidden_size, num_layers, num_heads, mlp_dim: ViT shape.
    pooler: "token" or "gap".
    value_range: (low, high) the network sees its pixels in (input is [0, 1]).
    dropout_rate: dropout in the transformer.
    recompute: recompute each transformer block's forward pass during backprop instead of
      keeping its activations (`lit_keras.towers.recompute`; needs `dropout_rate=0`).
  """

  allowed_states = (base.SCRATCH,)

  def __init__(self, image_size=224, patch_size=16, hidden_size=768, num_layers=12, num_heads=12,
               mlp_dim=3072, pooler="token", value_range=(-1.0, 1.0), dropout_rate=0.0,
               recompute=False, state=base.SCRATCH, **kwargs):
    super().__init__(state=state, **kwargs)
    from official.vision.modeling.backbones import vit  # pylint: disable=g-import-not-at-top
    self.image_size = int(image_size)
    self.patch_size = int(patch_size)
    self.hidden_size = int(hidden_size)
    self.num_layers = int(num_layers)
    self.num_heads = int(num_heads)
    self.mlp_dim = int(mlp_dim)
    self.pooler = pooler
    self.value_range = (float(value_range[0]), float(value_range[1]))
    self.dropout_rate = float(dropout_rate)
    if self.image_size % self.patch_size:
      raise ValueError(f"image_size {image_size} is not a multiple of patch_size {patch_size}")
    self.backbone = vit.VisionTransformer(
        mlp_dim=self.mlp_dim, num_heads=self.num_heads, num_layers=self.num_layers,
        attention_dropout_rate=0.0, dropout_rate=self.dropout_rate,
        input_specs=tf_keras.layers.InputSpec(shape=[None, self.image_size, self.image_size, 3]),
        patch_size=self.patch_size, hidden_size=self.hidden_size, pooler=pooler,
        output_encoded_tokens=False)
    encoder, = [l for l in self.backbone.layers if isinstance(l, vit.Encoder)]
    activations.use_lean_gelu(encoder._encoder_layers)  # pylint: disable=protected-access
    self.recompute = bool(recompute)
    if self.recompute:
      recompute_lib.recompute_blocks(encoder._encoder_layers, self.dropout_rate, self.name)  # pylint: disable=protected-access

  def encode(self, images, training=None):
    images = preprocess.to_range(tf.cast(images, tf.float32), self.value_range)
    out = self.backbone(images, training=training)["pre_logits"]
    return tf.reshape(out, [-1, self.hidden_size])

  def get_config(self):
    config = super().get_config()
    config.update(image_size=self.image_size, patch_size=self.patch_size,
                  hidden_size=self.hidden_size, num_layers=self.num_layers,
                  num_heads=self.num_heads, mlp_dim=self.mlp_dim, pooler=self.pooler,
                  value_range=list(self.value_range), dropout_rate=self.dropout_rate,
                  recompute=self.recompute)
    return config
