"""What a user of the programs sees: progress and results, not TensorFlow's start-up noise.

By default the programs hide TensorFlow's C++ log (the CUDA `cuInit` error line on CPU machines,
oneDNN notes), every INFO line not logged by lit_keras itself (TensorFlow's SavedModel writer,
matplotlib, and Orbit's, which Orbit also prints) and absl's
`I1201 07:08:03.155493 139841356172160 file.py:105]` line prefixes. Warnings and errors still
show, prefixed `warning:` / `error:`. `--verbose` on the command line brings everything back; a
TF_CPP_MIN_LOG_LEVEL set in the environment is respected.

The C++ part is set by `lit_keras_app.native_log` before TensorFlow is first imported.
"""
import contextlib
import logging
import os
import sys

from lit_keras import errors
from lit_keras_app.native_log import verbose_requested

# Messages TensorFlow/tf_keras print at WARNING level that say nothing to act on: writing a
# SavedModel; the checkpoint objects of a refused resume (the error says why) being deleted.
_HARMLESS = ("the compiled metrics have yet to be built",
             "Value in checkpoint could not be found in the restored object",
             "being deleted with unrestored values")


class _PlainFormatter(logging.Formatter):

  def format(self, record):
    message = record.getMessage()
    if record.exc_info:
      message += "\n" + self.formatException(record.exc_info)
    if record.levelno >= logging.ERROR:
      return "error: " + message
    if record.levelno >= logging.WARNING:
      return "warning: " + message
    return message


def _project_dirs():
  import importlib.util  # pylint: disable=g-import-not-at-top
  dirs = [os.path.dirname(os.path.abspath(__file__))]
  spec = importlib.util.find_spec("lit_keras")
  dirs += [os.path.abspath(d) for d in (spec.submodule_search_locations or [])] if spec else []
  return tuple(d + os.sep for d in dirs)


class _QuietFilter(logging.Filter):
  """INFO from this project's code only (Orbit prints its own lines, TensorFlow's SavedModel
  writer and matplotlib chatter); warnings and errors from everyone but known harmless ones."""

  def __init__(self):
    super().__init__()
    self._dirs = _project_dirs()

  def filter(self, record):
    if record.levelno < logging.WARNING:
      return os.path.abspath(record.pathname).startswith(self._dirs)
    return not any(h in record.getMessage() for h in _HARMLESS)


def setup(verbose=None):
  """Configures absl/Python logging for a program; call at the start of `main`."""
  from absl import logging as absl_logging  # pylint: disable=g-import-not-at-top
  absl_logging.set_verbosity(absl_logging.INFO)
  if verbose is None:
    verbose = verbose_requested()
  if verbose:
    return
  handler = absl_logging.get_absl_handler()
  handler.setFormatter(_PlainFormatter())
  handler.addFilter(_QuietFilter())
  # TensorFlow's logger also writes "WARNING:tensorflow:..." through a handler of its own when
  # it was imported before absl configured logging: its records reach absl's handler anyway.
  for h in logging.getLogger("tensorflow").handlers:
    h.addFilter(lambda record: False)


SETUP_ERROR_EXIT_CODE = 2
DIVERGED_EXIT_CODE = 3


@contextlib.contextmanager
def setup_errors():
  """A `lit_keras.errors.SetupError` (no TPU, a handle offline, a glob matching nothing, a
  workdir of another model) ends the program with its one-line message and exit code 2; a
  diverging run (the trainer's FloatingPointError) with exit code 3; no traceback unless
  `--verbose`."""
  try:
    yield
  except errors.SetupError as e:
    if verbose_requested():
      raise
    print(f"error: {e}", file=sys.stderr, flush=True)
    sys.exit(SETUP_ERROR_EXIT_CODE)
  except FloatingPointError as e:  # the trainer's non-finite stop; checkpoints stay finite
    if verbose_requested():
      raise
    print(f"error: training diverged: {e}", file=sys.stderr, flush=True)
    sys.exit(DIVERGED_EXIT_CODE)
