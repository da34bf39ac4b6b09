"""The command-line programs. Each module's `main` is a console script (setup.py) or, for train
and evaluate, the body of the top-level `train.py` / `evaluate.py`."""
from absl import flags

# The absl programs' (train.py, evaluate.py) switch for everything `console` hides by default.
VERBOSE = flags.DEFINE_bool(
    "verbose", False, "Show TensorFlow's C++ log, every library's INFO lines and absl's line "
    "prefixes (hidden by default). Example: python train.py --config=configs/demo.py "
    "--workdir=workdirs/demo --verbose")
