"""The one place that pins Keras 2 (`tf_keras`) for TensorFlow.

`hub.KerasLayer` and tf-models-official are tf_keras code: under Keras 3 hub layers fail or silently
stop training. `TF_USE_LEGACY_KERAS=1` must be set before TensorFlow is first imported so that
`tf.keras` is `tf_keras` too. Importing any part of `lit_keras` imports this module first (the
package `__init__` does), so programs only need to import `lit_keras` before TensorFlow.
"""
import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # hide the CUDA / CPU-feature start-up noise
