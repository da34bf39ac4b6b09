"""TensorFlow's environment, set in one place: Keras 2 (`tf_keras`), a pooled host allocator.

`hub.KerasLayer` and tf-models-official are tf_keras code: under Keras 3 hub layers fail or silently
stop training. `TF_USE_LEGACY_KERAS=1` must be set before TensorFlow is first imported so that
`tf.keras` is `tf_keras` too. Importing any part of `lit_keras` imports this module first (the
package `__init__` does), so programs only need to import `lit_keras` before TensorFlow.

It also turns on TensorFlow's pooling (BFC) allocator for host memory. TensorFlow's default CPU
allocator is `malloc` (unless oneDNN is on, the default on CPUs with AVX-512, which brings a
pooling allocator of its own), and glibc serves large blocks with `mmap` and hands them back to the
kernel when they are freed, so a step's large activations arrive as fresh pages every time: on a
2-core machine the locked EfficientNet-Lite0 forward ran at half the speed
(`docs/benchmarks.md`, "Host memory"). The pool keeps freed blocks for the next step. Set
`TF_CPU_ALLOCATOR_USE_BFC=false` before the import to get `malloc` back.
"""
import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # hide the CUDA / CPU-feature start-up noise
os.environ.setdefault("TF_CPU_ALLOCATOR_USE_BFC", "true")  # host memory from a pool, not mmap
