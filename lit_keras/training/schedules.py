"""Learning-rate schedule: linear warm-up, then cosine or linear decay to zero."""
import math

import tensorflow as tf
import tf_keras


@tf_keras.utils.register_keras_serializable(package="lit_keras")
class WarmupDecay(tf_keras.optimizers.schedules.LearningRateSchedule):
  """lr(step) = peak · step/warmup during warm-up, then cosine or linear decay to `end`."""

  def __init__(self, peak, total_steps, warmup_steps=0, decay="cosine", end=0.0, scale=1.0):
    if decay not in ("cosine", "linear", "constant"):
      raise ValueError(f"decay must be 'cosine', 'linear' or 'constant', got {decay!r}")
    self.peak, self.total_steps, self.warmup_steps = float(peak), int(total_steps), int(warmup_steps)
    self.decay, self.end, self.scale = decay, float(end), float(scale)

  def __call__(self, step):
    step = tf.cast(step, tf.float32)
    warm = tf.cast(max(self.warmup_steps, 1), tf.float32)
    span = tf.cast(max(self.total_steps - self.warmup_steps, 1), tf.float32)
    frac = tf.clip_by_value((step - self.warmup_steps) / span, 0.0, 1.0)
    if self.decay == "cosine":
      after = self.end + (self.peak - self.end) * 0.5 * (1.0 + tf.cos(math.pi * frac))
    elif self.decay == "linear":
      after = self.peak + (self.end - self.peak) * frac
    else:
      after = tf.constant(self.peak)
    lr = tf.where(step < self.warmup_steps, self.peak * step / warm, after)
    return self.scale * lr

  def get_config(self):
    return dict(peak=self.peak, total_steps=self.total_steps, warmup_steps=self.warmup_steps,
                decay=self.decay, end=self.end, scale=self.scale)
