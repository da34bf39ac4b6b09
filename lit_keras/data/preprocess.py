"""Robust image decoding, crops and caption cleaning, all inside tf.data (graph ops only).

Every input yields a fixed-shape float image in [0, 1] or an explicit `valid=False`, never a crash:
RGBA and palette/grayscale PNGs are composited on white and expanded to RGB, animated GIFs give
their first frame, 1×1 images are resized like any other, and empty or unknown bytes (zero bytes,
random bytes) are flagged invalid by their magic number before any decoder sees them.
"""
import tensorflow as tf

IMAGE_FORMATS = ("jpeg", "png", "gif", "bmp")
_MAGIC = {
    "jpeg": b"\xff\xd8\xff",
    "png": b"\x89PNG",
    "gif": b"GIF8",
    "bmp": b"BM",
}


def image_format(data):
  """'jpeg' | 'png' | 'gif' | 'bmp' | '' (anything else) from the magic number."""
  fmt = tf.constant("")
  for name, magic in _MAGIC.items():
    fmt = tf.where(tf.strings.substr(data, 0, len(magic)) == magic, name, fmt)
  return fmt


def _on_white(rgba):
  rgba = tf.image.convert_image_dtype(rgba, tf.float32)
  rgb, alpha = rgba[..., :3], rgba[..., 3:]
  return rgb * alpha + (1.0 - alpha)


def decode_image(data):
  """Bytes → (float32 [h, w, 3] in [0, 1], valid). Transparency is composited on white.

  JPEG, PNG, GIF and BMP are decoded; anything else (WebP included: the converter re-encodes it
  to PNG) is invalid and gets a 1×1 placeholder that the pipeline drops and counts.
  """
  fmt = image_format(data)
  placeholder = tf.ones([1, 1, 3], tf.float32)

  def png():
    return _on_white(tf.io.decode_png(data, channels=4))

  def jpeg():
    return tf.image.convert_image_dtype(tf.io.decode_jpeg(data, channels=3,
                                                          try_recover_truncated=True),
                                        tf.float32)

  def gif():
    return tf.image.convert_image_dtype(tf.io.decode_gif(data)[0], tf.float32)

  def bmp():
    return _on_white(tf.io.decode_bmp(data, channels=4))

  image = tf.case([(tf.equal(fmt, "png"), png), (tf.equal(fmt, "jpeg"), jpeg),
                   (tf.equal(fmt, "gif"), gif), (tf.equal(fmt, "bmp"), bmp)],
                  default=lambda: placeholder, exclusive=True)
  image = tf.ensure_shape(image, [None, None, 3])
  return image, tf.reduce_any(tf.equal(fmt, list(_MAGIC)))


def resize(image, size):
  return tf.image.resize(image, [size, size], method="bilinear", antialias=True)


def central_crop_resize(image, size, crop_fraction=1.0):
  """Evaluation: central square crop (of `crop_fraction` of the short side), resize to size."""
  shape = tf.shape(image)
  h, w = shape[0], shape[1]
  side = tf.cast(tf.cast(tf.minimum(h, w), tf.float32) * crop_fraction, tf.int32)
  side = tf.maximum(side, 1)
  image = tf.image.crop_to_bounding_box(image, (h - side) // 2, (w - side) // 2, side, side)
  return tf.ensure_shape(resize(image, size), [size, size, 3])


def inception_crop(image, size, seed, area_range=(0.05, 1.0)):
  """Training: Inception-style random crop (area 5–100%, aspect 3/4–4/3), resize to size.

  Stateless in `seed` (a [2] int tensor), so pipelines are deterministic per example.
  """
  begin, crop, _ = tf.image.stateless_sample_distorted_bounding_box(
      tf.shape(image), bounding_boxes=tf.constant([[[0.0, 0.0, 1.0, 1.0]]]), seed=seed,
      area_range=area_range, aspect_ratio_range=(3 / 4, 4 / 3), max_attempts=10,
      use_image_if_no_bounding_boxes=True)
  image = tf.slice(image, begin, crop)
  return tf.ensure_shape(resize(image, size), [size, size, 3])  # static: what a TPU needs


def to_range(image, value_range):
  lo, hi = value_range
  return image if (lo, hi) == (0.0, 1.0) else image * (hi - lo) + lo


def valid_utf8(texts):
  """Strings with invalid UTF-8 bytes replaced by U+FFFD, so that no text op can fail on them."""
  texts = tf.convert_to_tensor(texts, dtype=tf.string)
  return tf.strings.unicode_transcode(texts, "UTF-8", "UTF-8", errors="replace")


def clean_texts(texts):
  """Invalid UTF-8 replaced (U+FFFD), whitespace collapsed and stripped."""
  texts = tf.strings.regex_replace(valid_utf8(texts), r"\s+", " ")
  return tf.strings.strip(texts)


def sample_text(texts, seed):
  """One non-empty caption drawn uniformly (stateless in `seed`); ('', False) if none."""
  texts = clean_texts(texts)
  nonempty = tf.boolean_mask(texts, tf.strings.length(texts) > 0)
  n = tf.shape(nonempty)[0]
  idx = tf.random.stateless_uniform([], seed=seed, maxval=tf.maximum(n, 1), dtype=tf.int32)
  text = tf.cond(n > 0, lambda: tf.gather(nonempty, idx), lambda: tf.constant(""))
  return text, n > 0
