"""Data files that ship with the package (facts, not code); `lit_keras.evaluation.prompts` reads
the class lists and prompt templates among them (and `lit_keras.data.tfds_source` the ImageNet-1k
names)."""
import os

_DIR = os.path.dirname(__file__)


def path(name):
  """The path of a packaged data file."""
  return os.path.join(_DIR, name)


def imagenet1k_classes(first_name_only=True):
  """The 1,000 ImageNet-1k class names in label order (WordNet lemmas; from tensorflow-datasets,
  Apache-2.0). `first_name_only` keeps the first lemma ("Egyptian cat") of each class."""
  with open(path("imagenet1k_classes.txt"), encoding="utf-8") as f:
    names = f.read().splitlines()
  return [n.split(",")[0].strip() for n in names] if first_name_only else names
