"""lit_keras_app: the application built on the `lit_keras` library (never the reverse).

  ports/     weight ports from other frameworks (EfficientNet-Lite0, MiniLM-L6) → TF-Hub format
  datasets/  a registry of offline datasets, one module each (files, eval sets, classes, prompts)
  resolve    a config's dataset names and symbolic handles → concrete files and paths
  cli/       the programs: train, evaluate, export, convert, validate, precompute, build-towers,
             build-data (`train.py` and `evaluate.py` at the top of the repository are thin)

Imports run downward: `cli` → `resolve` → `datasets` → `ports` → `lit_keras`.
"""
from lit_keras_app import native_log

native_log.native_log_level()  # before TensorFlow loads: its C++ log only with --verbose
import lit_keras  # noqa: E402,F401  (pins Keras 2 before TensorFlow loads)
