"""LiTModel: two towers, two projection heads, a learned temperature; Keras `compile()`/`fit()`
with the exact global-batch contrastive loss."""
import math

import tensorflow as tf
import tf_keras

from lit_keras import losses
from lit_keras import serialization
from lit_keras.layers.logit_scale import LogitScale
from lit_keras.layers.projection_head import ProjectionHead
from lit_keras.losses import gradients
from lit_keras.models import gradient_cache


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

  Training the Keras way: `compile(optimizer, loss="softmax" | "sigmoid")` then `fit(dataset)`
  under `strategy.scope()`, with `steps_per_execution`, callbacks (`ModelCheckpoint`,
  `TensorBoard`, `BackupAndRestore`, ...) and the exact global-batch loss on any number of
  replicas; `evaluate()` reports the loss and the in-batch retrieval accuracies. The step is
  `train_step_values`, the same one lit_keras' trainer runs.

  Example:
  >>> model = LiTModel(image_tower, text_tower, embed_dim=128)
  >>> model.compile(tf_keras.optimizers.AdamW(1e-3, weight_decay=1e-4), loss="softmax")
  >>> model.fit(dataset, epochs=1, steps_per_epoch=100, steps_per_execution=10)

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

  # --- Training: the step shared by fit() and lit_keras' trainer -------------------------------
  def compile(self, optimizer="adam", loss="softmax", *, image_optimizer=None,
              clip_grad_norm=None, global_batch=True, chunk_size=None, **kwargs):
    """Configures training with a contrastive loss over the global batch.

    Args:
      optimizer: a tf_keras optimizer (or its name), created under the strategy's scope.
      loss: "softmax" (LiT), "sigmoid" (SigLIP; needs `use_bias=True`), or a callable
        `(zimg, ztxt, logit_scale, logit_bias) -> (loss, metrics)` like those of
        `lit_keras.losses`.
      image_optimizer: a second optimizer for the image tower's variables (e.g. the paper's
        smaller learning rate for an unlocked image tower); None: one optimizer for everything.
      clip_grad_norm: clip the global gradient norm to this value.
      global_batch: False scores each replica's batch alone (the per-device loss).
      chunk_size: embed each replica's batch this many rows at a time and back-propagate the
        global loss through cached embedding gradients (`gradient_cache`): the same loss and
        gradients as the whole batch at once, with one chunk's activations in memory. None: the
        whole per-replica batch at once. Pair it with a blocked loss (`losses.get_loss(name,
        block_size)`) so the logits do not dominate memory either.
      **kwargs: the rest of `tf_keras.Model.compile` (`steps_per_execution`, `jit_compile`, ...).
    """
    for unsupported in ("metrics", "loss_weights", "weighted_metrics"):
      if kwargs.get(unsupported):
        raise ValueError(f"LiTModel.compile does not take {unsupported!r}: its metrics are the "
                         "contrastive loss's (loss, i2t_acc, t2i_acc, temperature, ...)")
    super().compile(optimizer=optimizer, **kwargs)
    loss_fn = losses.get_loss(loss) if isinstance(loss, str) else loss
    if loss_fn is losses.sigmoid_contrastive_loss and not self.use_bias:
      raise ValueError("the sigmoid loss needs a learned bias: build LiTModel(use_bias=True)")
    if not global_batch:
      loss_fn = lambda *a, _f=loss_fn: _f(*a, global_batch=False)
    self.contrastive_loss = loss_fn
    self.image_optimizer = (tf_keras.optimizers.get(image_optimizer)
                            if image_optimizer is not None else None)
    self.clip_grad_norm = clip_grad_norm
    if chunk_size is not None and (isinstance(chunk_size, bool) or int(chunk_size) < 1):
      raise ValueError(f"chunk_size must be a positive integer or None, got {chunk_size!r}")
    self.chunk_size = int(chunk_size) if chunk_size else None
    # Every replica returns the same, already global, values: report one replica's.
    self.distribute_reduction_method = "first"
    with self.distribute_strategy.scope():
      self._trackers = {n: tf_keras.metrics.Mean(name=n.replace("/", "_"))
                        for n in self.step_metric_names()}

  @property
  def metrics(self):
    return list(getattr(self, "_trackers", {}).values())

  def step_metric_names(self):
    """The names of the values a training step reports (those of the compiled loss, plus
    "loss", "grad_norm", "img/norm", "txt/norm")."""
    z = tf.math.l2_normalize(tf.ones([2, self.embed_dim]), axis=-1)
    scales = self.logit_scale(None)
    _, metrics = self.contrastive_loss(z, z, scales["logit_scale"], scales.get("logit_bias"))
    return sorted(set(metrics) | {"loss", "grad_norm", "img/norm", "txt/norm"})

  def _loss_and_metrics(self, data, training):
    out = self(data, training=training)
    loss, metrics = self.contrastive_loss(out["zimg"], out["ztxt"], out["logit_scale"],
                                          out.get("logit_bias"))
    return loss, dict(metrics, **{"img/norm": out["img/norm"], "txt/norm": out["txt/norm"]})

  def train_step_values(self, data):
    """One optimisation step, in replica context: the exact gradient of the global-batch loss
    (`losses.gradients.global_gradients`, or in chunks: `gradient_cache`), optional clipping of
    its global norm, the optimizer(s). Returns {name: global value}, the same on every replica."""
    image_ids = ({id(v) for v in self.image_tower.trainable_variables}
                 if self.image_optimizer is not None else set())
    if getattr(self, "chunk_size", None):
      used, grads, values = gradient_cache.cached_gradients(
          self, data, self.chunk_size, self.contrastive_loss, self.trainable_variables)
    else:
      used, grads, values = gradients.global_gradients(
          lambda: self._loss_and_metrics(data, training=True), self.trainable_variables)
    if self.clip_grad_norm:
      grads, _ = tf.clip_by_global_norm(grads, self.clip_grad_norm, use_norm=values["grad_norm"])
    main = [(g, v) for g, v in zip(grads, used) if id(v) not in image_ids]
    if main:
      self.optimizer.apply_gradients(main, skip_gradients_aggregation=True)
    image = [(g, v) for g, v in zip(grads, used) if id(v) in image_ids]
    if image:
      self.image_optimizer.apply_gradients(image, skip_gradients_aggregation=True)
    return values

  def _track(self, values):
    for k, v in values.items():
      self._trackers[k].update_state(v)
    return {self._trackers[k].name: self._trackers[k].result() for k in values}

  def train_step(self, data):
    """Keras' step: `train_step_values`, reported as running means over the epoch."""
    return self._track(self.train_step_values(data))

  def test_step(self, data):
    """The loss and the in-batch accuracies (image→text, text→image) over the global batch."""
    loss, metrics = self._loss_and_metrics(data, training=False)
    values = gradients.global_mean(dict(metrics, loss=loss))
    return self._track({k: v for k, v in values.items() if k in self._trackers})

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
