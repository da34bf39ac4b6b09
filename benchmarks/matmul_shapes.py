"""fp32 matmul GFLOP/s in TF at bench-tiny's own shapes: eager, tf.function, XLA (2 threads).

    .venv/bin/python benchmarks/matmul_shapes.py

Shapes: the 2048² peak, then the ViT's (128 images × 65 tokens = 8,320 rows, width 192, MLP 768)
and the text tower's (128 × 16 = 2,048 rows, width 256, MLP 1,024) MLP matmuls. Median of 15.
Then the text tower's MLP product the way tfm's `EinsumDense` computes it in a training step
(graph mode): the forward einsum, the input gradient and the kernel gradient, each beside the
same product as one 2-D `matmul` (rows flattened, transposes as flags). Run it with
`TF_ENABLE_ONEDNN_OPTS=1` to see oneDNN's kernels instead of Eigen's.
"""
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import tensorflow as tf

SHAPES = [(2048, 2048, 2048), (8320, 192, 768), (8320, 768, 192), (2048, 256, 1024),
          (2048, 1024, 256)]


def median_seconds(fn, *args, reps=15):
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
    cells = [f"{name} {flop / median_seconds(fn, x, y) / 1e9:.0f}"
             for name, fn in variants.items()]
    print(f"[{m} x {k}] @ [{k} x {n}]: " + ", ".join(cells) + " GFLOP/s", flush=True)
  b, t, c, d = 128, 16, 256, 1024  # the text tower's batch, tokens, width, MLP width
  x, dy, w = tf.random.normal((b, t, c)), tf.random.normal((b, t, d)), tf.random.normal((c, d))
  x2, dy2 = tf.reshape(x, (b * t, c)), tf.reshape(dy, (b * t, d))
  products = {
      "forward  x·W": (lambda: tf.einsum("abc,cd->abd", x, w),
                       lambda: tf.linalg.matmul(x2, w)),
      "input grad dy·Wᵀ": (lambda: tf.einsum("abd,cd->abc", dy, w),
                           lambda: tf.linalg.matmul(dy2, w, transpose_b=True)),
      "kernel grad xᵀ·dy": (lambda: tf.einsum("abc,abd->cd", x, dy),
                            lambda: tf.linalg.matmul(x2, dy2, transpose_a=True)),
  }
  flop = 2 * b * t * c * d
  for name, (einsum, matmul2d) in products.items():
    cells = [f"{kind} {flop / median_seconds(tf.function(fn)) / 1e9:.0f}"
             for kind, fn in (("einsum", einsum), ("matmul", matmul2d))]
    print(f"text MLP {name} [{b}x{t}x{c}]·[{c}x{d}]: " + ", ".join(cells) + " GFLOP/s "
          f"(graph, TF_ENABLE_ONEDNN_OPTS={os.environ.get('TF_ENABLE_ONEDNN_OPTS', 'default')})",
          flush=True)


if __name__ == "__main__":
  main()
