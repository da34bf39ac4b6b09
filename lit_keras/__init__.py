"""lit_keras: LiT (Locked-image text Tuning, Zhai et al., CVPR 2022) for TensorFlow / tf_keras.

Importing the package pins Keras 2: `hub.KerasLayer` and tf-models-official are tf_keras code, and
under Keras 3 hub layers fail or silently stop training. `TF_USE_LEGACY_KERAS=1` must be set before
TensorFlow is first imported so that `tf.keras` is `tf_keras` too.
"""
import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"

from lit_keras import layers  # noqa: E402,F401
from lit_keras import losses  # noqa: E402,F401
from lit_keras import models  # noqa: E402,F401
from lit_keras import towers  # noqa: E402,F401
from lit_keras.models.lit_model import LiTModel  # noqa: E402,F401
