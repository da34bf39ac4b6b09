"""fp32 matmul GFLOP/s in TF at bench-tiny's own shapes: eager, tf.function, XLA (2 threads).

    .venv/bin/python benchmarks/matmul_shapes.py

Shapes: the 2048² peak, then the ViT's (128 images × 65 tokens = 8,320 rows, width 192, MLP 768)
and the text tower's (128 × 16 = 2,048 rows, width 256, MLP 1,024) MLP matmuls. Median of 15.
"""
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import tensorflow as tf

SHAPES = [(2048, 2048, 2048), (8320, 192, 768), (8320, 768, 192), (2048, 256, 1024),
          (2048, 1024, 256)]


def _median_seconds(fn, *args, reps=15):
  for _ in range(3):
    fn(*args).numpy()
  times = []
  for _ in range(reps):
    t0 = time.perf_counter()
    fn(*args).numpy()
    times.append(time.perf_counter() - t0)
  return statistics.median(times)


def main():
  tf.config.threading.set_intra_op_parallelism_threads(2)
  tf.config.threading.set_inter_op_parallelism_threads(1)
  matmul = lambda a, b: tf.linalg.matmul(a, b)
  variants = {"eager": matmul, "graph": tf.function(matmul),
              "xla": tf.function(matmul, jit_compile=True)}
  for m, k, n in SHAPES:
    x, y = tf.random.normal((m, k)), tf.random.normal((k, n))
    flop = 2 * m * k * n
    cells = [f"{name} {flop / _median_seconds(fn, x, y) / 1e9:.0f}"
             for name, fn in variants.items()]
    print(f"[{m} x {k}] @ [{k} x {n}]: " + ", ".join(cells) + " GFLOP/s", flush=True)


if __name__ == "__main__":
  main()
