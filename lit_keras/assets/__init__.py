"""Data files that ship with the package (facts, not code); `lit_keras.evaluation.prompts` reads
the class lists and prompt templates among them."""
import os

_DIR = os.path.dirname(__file__)


def path(name):
  """The path of a packaged data file."""
  return os.path.join(_DIR, name)
