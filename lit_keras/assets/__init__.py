"""Data files that ship with the package (facts, not code)."""
import os

_DIR = os.path.dirname(__file__)


def path(name):
  return os.path.join(_DIR, name)


def imagenet1k_classes(first_name_only=True):
  """The 1,000 ImageNet-1k class names in label order (WordNet lemmas; from tensorflow-datasets,
  Apache-2.0). `first_name_only` keeps the first lemma ("Egyptian cat") of each class."""
  with open(path("imagenet1k_classes.txt"), encoding="utf-8") as f:
    names = f.read().splitlines()
  return [n.split(",")[0].strip() for n in names] if first_name_only else names


def _lines(name):
  with open(path(name), encoding="utf-8") as f:
    return [line for line in f.read().splitlines() if line]


def clip_templates():
  """The 80 ImageNet prompt templates of CLIP (Radford et al. 2021), `{}` = class name.

  Copied from PyPI `open_clip_torch==3.3.0` (`zero_shot_metadata.OPENAI_IMAGENET_TEMPLATES`)."""
  return _lines("clip_imagenet_templates.txt")


def clip_templates_short():
  """CLIP's 7-template subset (open_clip `SIMPLE_IMAGENET_TEMPLATES`)."""
  return _lines("clip_imagenet_templates_short.txt")
