"""The TFRecord schemas of lit_keras.

Image–text examples (`tf.train.Example`), one per image:

| feature        | type                | meaning                                                        |
|----------------|---------------------|----------------------------------------------------------------|
| `image/encoded`| bytes               | the encoded image (JPEG, PNG, GIF, BMP or WebP)                |
| `texts`        | bytes list, ≥ 1     | UTF-8 captions: all text signals of the image (title, description, tags, …) |
| `label`        | int64, optional     | class index (−1 or absent: unlabelled)                         |
| `id`           | bytes               | a unique id (file name, URL-free key)                          |

Pre-computed image embeddings (training with a locked image tower, no image model loaded):

| feature     | type          | meaning                                                           |
|-------------|---------------|-------------------------------------------------------------------|
| `embedding` | float list    | the locked tower's pooled features, fixed length `dim`            |
| `texts`, `label`, `id` | as above |                                                           |
"""
import tensorflow as tf

IMAGE, TEXTS, LABEL, ID, EMBEDDING = "image/encoded", "texts", "label", "id", "embedding"
NO_LABEL = -1


def _bytes(values):
  return tf.train.Feature(bytes_list=tf.train.BytesList(value=values))


def _to_bytes(s):
  return s.encode("utf-8") if isinstance(s, str) else bytes(s)


def image_example(image_bytes, texts, example_id, label=None):
  """A serialized image–text `tf.train.Example`."""
  if isinstance(texts, (str, bytes)):
    texts = [texts]
  feature = {
      IMAGE: _bytes([bytes(image_bytes)]),
      TEXTS: _bytes([_to_bytes(t) for t in texts]),
      ID: _bytes([_to_bytes(example_id)]),
      LABEL: tf.train.Feature(int64_list=tf.train.Int64List(
          value=[NO_LABEL if label is None else int(label)])),
  }
  return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def embedding_example(embedding, texts, example_id, label=None):
  """A serialized pre-computed-embedding `tf.train.Example`."""
  if isinstance(texts, (str, bytes)):
    texts = [texts]
  feature = {
      EMBEDDING: tf.train.Feature(float_list=tf.train.FloatList(value=list(map(float,
                                                                              embedding)))),
      TEXTS: _bytes([_to_bytes(t) for t in texts]),
      ID: _bytes([_to_bytes(example_id)]),
      LABEL: tf.train.Feature(int64_list=tf.train.Int64List(
          value=[NO_LABEL if label is None else int(label)])),
  }
  return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def image_features():
  return {
      IMAGE: tf.io.FixedLenFeature([], tf.string, default_value=b""),
      TEXTS: tf.io.VarLenFeature(tf.string),
      LABEL: tf.io.FixedLenFeature([], tf.int64, default_value=NO_LABEL),
      ID: tf.io.FixedLenFeature([], tf.string, default_value=b""),
  }


def embedding_features(dim):
  return {
      EMBEDDING: tf.io.FixedLenFeature([dim], tf.float32),
      TEXTS: tf.io.VarLenFeature(tf.string),
      LABEL: tf.io.FixedLenFeature([], tf.int64, default_value=NO_LABEL),
      ID: tf.io.FixedLenFeature([], tf.string, default_value=b""),
  }


def parse(serialized, embedding_dim=None):
  """Parses one serialized example; `texts` becomes a dense string vector [n]."""
  spec = embedding_features(embedding_dim) if embedding_dim else image_features()
  ex = tf.io.parse_single_example(serialized, spec)
  ex[TEXTS] = tf.sparse.to_dense(ex[TEXTS], default_value=b"")
  return ex
