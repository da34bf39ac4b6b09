"""Errors a user can act on: the machine, the data or the workdir cannot run what was asked.

Each message says in one line what is missing and how to go on; the programs (`train.py`,
`evaluate.py`) print it as `error: ...` without a traceback and exit with code 2.
"""


class SetupError(Exception):
  """Base: something the environment, the configuration or the workdir lacks."""


class NoFilesError(SetupError, FileNotFoundError):
  """A file pattern (a `--config.data.train` glob, an evaluation set) matches nothing."""


class NoUsableExampleError(SetupError, ValueError):
  """Training data whose records are all unusable (a training stream would wait forever)."""


class StrategyUnavailableError(SetupError, RuntimeError):
  """The requested tf.distribute strategy cannot run here (e.g. `--strategy=tpu` without a TPU)."""


class HandleUnavailableError(SetupError, ValueError):
  """A TF-Hub handle or model path cannot be reached (offline, or no such directory)."""


class IncompatibleWorkdirError(SetupError, ValueError):
  """The workdir holds checkpoints of a different model than the config builds."""
