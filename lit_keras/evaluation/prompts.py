"""Class lists and prompt templates for zero-shot classification: every named list in one place.

A *class list* is a list whose items are class names or lists of aliases (`["dog", "puppy"]`);
a *template* contains `{}`, filled with a class name. Both are referred to by a spec:
- a Python list (used as is);
- a registered name: the library's own `imagenet1k` (the 1,000 ImageNet-1k classes), `clip` (CLIP's
  80 ImageNet templates), `clip-short` (its 7-template subset) and `plain` (`["{}"]`), plus the
  names that dataset modules register (`register_class_names`, `register_templates`);
- else a text file, one item per line (relative paths are taken from `data_dir`).

Example:
>>> prompts.templates("clip")[0]
'a bad photo of a {}.'
>>> prompts.class_names("imagenet1k")[285]
'Egyptian cat'
"""
import os

import tensorflow as tf

from lit_keras import assets

_CLASS_NAMES = {}
_TEMPLATES = {}


def _lines(path):
  with tf.io.gfile.GFile(path, "r") as f:
    return [line.strip() for line in f.read().splitlines() if line.strip()]


def imagenet1k_classes(first_name_only=True):
  """The 1,000 ImageNet-1k class names in label order (`lit_keras.assets.imagenet1k_classes`)."""
  return assets.imagenet1k_classes(first_name_only)


def clip_templates():
  """The 80 ImageNet prompt templates of CLIP (Radford et al. 2021), `{}` = class name.

  Copied from PyPI `open_clip_torch==3.3.0` (`zero_shot_metadata.OPENAI_IMAGENET_TEMPLATES`)."""
  return _lines(assets.path("clip_imagenet_templates.txt"))


def clip_templates_short():
  """CLIP's 7-template subset (open_clip `SIMPLE_IMAGENET_TEMPLATES`)."""
  return _lines(assets.path("clip_imagenet_templates_short.txt"))


def register_class_names(name, names_or_loader):
  """Registers a class list under `name`: a list, or `loader(data_dir) -> list` (read when
  used; `data_dir` is the evaluated dataset's directory, or None)."""
  _CLASS_NAMES[name] = names_or_loader


def register_templates(name, templates):
  """Registers a list of prompt templates under `name`."""
  bad = [t for t in templates if "{}" not in t]
  if bad:
    raise ValueError(f"templates without '{{}}': {bad}")
  _TEMPLATES[name] = list(templates)


def class_list_names():
  """The registered class-list names."""
  return sorted(_CLASS_NAMES)


def template_names():
  """The registered template-list names."""
  return sorted(_TEMPLATES)


def _resolve_file(spec, data_dir):
  path = spec if (os.path.isabs(spec) or "://" in spec or not data_dir) else os.path.join(
      data_dir, spec)
  if not tf.io.gfile.exists(path):
    raise ValueError(f"{spec!r} is neither a registered name ({sorted(_CLASS_NAMES)} / "
                     f"{sorted(_TEMPLATES)}) nor a file")
  return _lines(path)


def class_names(spec, data_dir=None):
  """The class list of `spec` (a list, a registered name, or a file)."""
  if isinstance(spec, (list, tuple)):
    return list(spec)
  if spec in _CLASS_NAMES:
    value = _CLASS_NAMES[spec]
    return list(value(data_dir) if callable(value) else value)
  return _resolve_file(spec, data_dir)


def templates(spec, data_dir=None):
  """The templates of `spec` (a list, a registered name, or a file)."""
  if isinstance(spec, (list, tuple)):
    return list(spec)
  if spec in _TEMPLATES:
    return list(_TEMPLATES[spec])
  return _resolve_file(spec, data_dir)


register_class_names("imagenet1k", lambda data_dir: imagenet1k_classes())
register_templates("clip", clip_templates())
register_templates("clip-short", clip_templates_short())
register_templates("plain", ["{}"])
