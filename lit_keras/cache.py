"""The one owner of lit_keras' cache directory.

Built datasets, ported pretrained towers and pre-computed image embeddings live under one root:
`$LIT_KERAS_CACHE`, else `~/.cache/lit_keras`. Any path works, `gs://` included (every file is
read and written through `tf.io.gfile`).
"""
import os

ENV_VAR = "LIT_KERAS_CACHE"


def root(cache_dir=None):
  """`cache_dir` if given, else `$LIT_KERAS_CACHE`, else `~/.cache/lit_keras`."""
  if cache_dir:
    return cache_dir
  return os.environ.get(ENV_VAR) or os.path.join(os.path.expanduser("~"), ".cache", "lit_keras")


def path(*parts, cache_dir=None):
  """A path inside the cache, e.g. `path("data", "emoji")`."""
  return os.path.join(root(cache_dir), *parts)
