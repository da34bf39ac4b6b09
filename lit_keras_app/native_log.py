"""TensorFlow's C++ log level from the command line, set before TensorFlow is first imported.

Imports nothing of this project (it runs first, from the package `__init__`): the programs hide
TensorFlow's C++ log (the CUDA `cuInit` line on CPU machines, oneDNN notes) unless `--verbose`
is on the command line; a TF_CPP_MIN_LOG_LEVEL set in the environment is respected.
"""
import os
import sys


def verbose_requested(argv=None):
  """True if the command line holds --verbose (or --verbose=true/1; --noverbose wins)."""
  value = False
  for arg in (sys.argv if argv is None else argv)[1:]:
    if arg == "--verbose":
      value = True
    elif arg.startswith("--verbose="):
      value = arg.split("=", 1)[1].lower() in ("1", "true", "yes")
    elif arg == "--noverbose":
      value = False
  return value


def native_log_level(argv=None):
  """Sets TensorFlow's C++ log level from the command line unless the environment sets it."""
  if "TF_CPP_MIN_LOG_LEVEL" not in os.environ:
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0" if verbose_requested(argv) else "3"
