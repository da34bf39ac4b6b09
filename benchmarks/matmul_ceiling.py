"""The most a bench-tiny train step could reach of TF's matmul peak: its own products, timed alone.

    .venv/bin/python benchmarks/matmul_ceiling.py --out benchmarks/results/matmul_ceiling.json

For `pre` and `uu` the script traces the library's replica train step (`model.train_step_values`,
the function `make_train_step` runs under the strategy) at the bench-tiny shape of
`benchmarks/bench_tiny.py`, and reads every matrix product in the traced graph — `MatMul`,
`BatchMatMulV2/V3` and `Einsum`, forward and backward, with their static shapes and transpose
flags. Each distinct product is then run alone as a one-op `tf.function` with random inputs
of those shapes (graph mode, 2 intra-op threads, the median of 30 calls minus the median of an
empty call), and its FLOPs (1 multiply-add = 2) are counted from the shapes. `lu` is `pre`'s
products plus the ViT's forward (the locked tower runs forward only; a hub SavedModel's forward
is an opaque call in the step's graph, so it is traced from the same ViT built in-process).

It prints, per mode: the step's matmul FLOPs per pair, the summed time of its products when each
runs alone, and their ratio — the GFLOP/s of a step that did nothing but its own products at
their best isolated speed — as a fraction of the 2048² matmul peak measured in the same process.
With `--steps N` it also times N steps of the real train step (graph mode), so the share of the
step the products take and the rest (elementwise ops, the optimizer, dispatch) are measured too.
"""
import argparse
import collections
import json
import os
import statistics
import sys
import tempfile
import time

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import bench_tiny  # benchmarks/bench_tiny.py: the shape, the model, the step
from matmul_shapes import median_seconds  # benchmarks/matmul_shapes.py

PRODUCT_OPS = ("MatMul", "BatchMatMulV2", "BatchMatMulV3", "Einsum")


def product_signature(op):
  """(type, input shapes, attrs) of a product op in a traced graph, or ValueError."""
  shapes = tuple(tuple(t.shape.as_list()) for t in op.inputs)
  if any(d is None for s in shapes for d in s):
    raise ValueError(f"{op.name}: shapes not static: {shapes}")
  if op.type == "MatMul":
    attrs = (op.get_attr("transpose_a"), op.get_attr("transpose_b"))
  elif op.type.startswith("BatchMatMul"):
    attrs = (op.get_attr("adj_x"), op.get_attr("adj_y"))
  else:
    attrs = (op.get_attr("equation").decode(),)
  return (op.type, shapes, attrs)


def product_flops(sig):
  """2 × the multiply-adds of a product, from its shapes."""
  kind, shapes, attrs = sig
  a, b = shapes
  if kind == "MatMul":
    m, k = (a[1], a[0]) if attrs[0] else a
    n = b[0] if attrs[1] else b[1]
    return 2 * m * k * n
  if kind.startswith("BatchMatMul"):
    m, k = (a[-1], a[-2]) if attrs[0] else (a[-2], a[-1])
    n = b[-2] if attrs[1] else b[-1]
    batch = 1
    for d in (a[:-2] if len(a) >= len(b) else b[:-2]):
      batch *= d
    return 2 * batch * m * k * n
  inputs, _ = attrs[0].split("->")
  if "." in inputs:
    raise ValueError(f"einsum with an ellipsis not counted: {attrs[0]}")
  sizes = {}
  for letters, shape in zip(inputs.split(","), shapes):
    sizes.update(zip(letters, shape))
  total = 2
  for size in sizes.values():
    total *= size
  return total


def step_products(graph):
  """Counter of product signatures in `graph` and the functions it calls (while bodies etc.)."""
  counts = collections.Counter()
  seen = set()

  def walk(g):
    for op in g.get_operations():
      if op.type in PRODUCT_OPS:
        counts[product_signature(op)] += 1
    for name, fn in getattr(g, "_functions", {}).items():
      if name not in seen and hasattr(fn, "graph"):
        seen.add(name)
        walk(fn.graph)

  walk(graph)
  return counts


def time_product(sig, reps, overhead_s):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  kind, shapes, attrs = sig
  args = [tf.random.normal(s) for s in shapes]
  if kind == "MatMul":
    fn = tf.function(lambda x, y: tf.linalg.matmul(x, y, transpose_a=attrs[0],
                                                   transpose_b=attrs[1]))
  elif kind.startswith("BatchMatMul"):
    fn = tf.function(lambda x, y: tf.linalg.matmul(x, y, adjoint_a=attrs[0], adjoint_b=attrs[1]))
  else:
    fn = tf.function(lambda x, y: tf.einsum(attrs[0], x, y))
  return max(median_seconds(fn, *args, reps=reps) - overhead_s, 1e-7)


def main():
  p = argparse.ArgumentParser(description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--modes", default="pre,lu,uu")
  p.add_argument("--reps", type=int, default=30)
  p.add_argument("--steps", type=int, default=10, help="real train steps timed per mode (0: none)")
  p.add_argument("--out", default="")
  flags, rest = p.parse_known_args()
  a = bench_tiny.parse_args(rest)

  import lit_keras  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import  (Keras 2)
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  from lit_keras import losses  # pylint: disable=g-import-not-at-top
  from lit_keras.training import step as step_lib  # pylint: disable=g-import-not-at-top
  tf.config.threading.set_intra_op_parallelism_threads(a.threads)
  tf.config.threading.set_inter_op_parallelism_threads(1)

  overhead = median_seconds(tf.function(lambda x: x + 1.0), tf.zeros([]), reps=200)
  x2048 = [tf.random.normal((2048, 2048)), tf.random.normal((2048, 2048))]
  peak = 2 * 2048 ** 3 / median_seconds(tf.function(tf.linalg.matmul), *x2048) / 1e9
  print(f"TF fp32 matmul peak, 2048², {a.threads} threads: {peak:.1f} GFLOP/s; "
        f"empty call {overhead * 1e6:.0f} µs", flush=True)

  modes = [m for m in flags.modes.split(",") if m]
  built = {}
  products = {}
  # `lu`'s products are `pre`'s plus the ViT forward traced from `uu`'s model.
  traced = set(modes) | ({"pre", "uu"} if "lu" in modes else set())
  for mode in ("pre", "uu"):
    if mode not in traced:
      continue
    tf.keras.utils.set_random_seed(a.seed)
    model, batches = bench_tiny.build(a, mode)
    model(batches[0])
    train_step = step_lib.make_train_step(model, bench_tiny.adamw(a), losses.get_loss("softmax"))
    built[mode] = (model, batches, train_step)
    graph = tf.function(model.train_step_values).get_concrete_function(batches[0]).graph
    products[mode] = step_products(graph)
    if mode == "uu":
      vit = tf.function(lambda x, m=model: m.image_tower(x, training=False))
      products["vit_forward"] = step_products(
          vit.get_concrete_function(batches[0]["image"]).graph)
  if "lu" in modes:
    products["lu"] = products["pre"] + products["vit_forward"]

  timing = {}
  for counts in products.values():
    for sig in counts:
      if sig not in timing:
        timing[sig] = time_product(sig, flags.reps, overhead)

  step_s = {}
  if flags.steps:
    with tempfile.TemporaryDirectory() as hub_dir:
      for mode in modes:
        if mode == "lu":
          bench_tiny.export_locked_vit(a, hub_dir)
          tf.keras.utils.set_random_seed(a.seed)
          model, batches = bench_tiny.build(argparse.Namespace(**{**vars(a), "hub_dir": hub_dir}),
                                            "lu")
          model(batches[0])
          train_step = step_lib.make_train_step(model, bench_tiny.adamw(a),
                                                losses.get_loss("softmax"))
        else:
          model, batches, train_step = built[mode]
        for i in range(3):
          float(train_step(batches[i % len(batches)])["loss"])
        times = []
        for i in range(flags.steps):
          t0 = time.perf_counter()
          float(train_step(batches[i % len(batches)])["loss"])
          times.append(time.perf_counter() - t0)
        step_s[mode] = statistics.median(times)

  report = {"peak_gflops": peak, "threads": a.threads, "batch": a.batch, "modes": {}}
  for mode in modes:
    counts = products[mode]
    flops = sum(product_flops(s) * n for s, n in counts.items())
    seconds = sum(timing[s] * n for s, n in counts.items())
    row = {"products_per_step": sum(counts.values()), "distinct_products": len(counts),
           "matmul_flops_per_pair": flops / a.batch, "products_alone_s": seconds,
           "ceiling_gflops": flops / seconds / 1e9, "ceiling_of_peak": flops / seconds / 1e9 / peak}
    if mode in step_s:
      row.update(step_s=step_s[mode], step_gflops=flops / step_s[mode] / 1e9,
                 step_of_peak=flops / step_s[mode] / 1e9 / peak,
                 products_share_of_step=seconds / step_s[mode])
    top = sorted(counts.items(), key=lambda kv: -timing[kv[0]] * kv[1])[:8]
    row["slowest"] = [{"op": s[0], "shapes": s[1], "attrs": s[2], "count": n,
                       "ms_each": timing[s] * 1e3,
                       "gflops": product_flops(s) / timing[s] / 1e9} for s, n in top]
    report["modes"][mode] = row
    print(f"{mode}: {row['products_per_step']} products ({row['distinct_products']} distinct), "
          f"{row['matmul_flops_per_pair'] / 1e6:.1f} MFLOP/pair; alone {seconds * 1e3:.0f} ms "
          f"→ ceiling {row['ceiling_gflops']:.1f} GFLOP/s = {row['ceiling_of_peak']:.2f} of peak"
          + (f"; real step {step_s[mode] * 1e3:.0f} ms = {row['step_of_peak']:.2f} of peak, "
             f"products alone {row['products_share_of_step']:.0%} of it" if mode in step_s else ""),
          flush=True)
    for t in row["slowest"]:
      print(f"    {t['count']:3d} × {t['op']} {t['shapes']} {t['attrs']}: "
            f"{t['ms_each']:.2f} ms, {t['gflops']:.0f} GFLOP/s", flush=True)
  if flags.out:
    os.makedirs(os.path.dirname(os.path.abspath(flags.out)), exist_ok=True)
    with open(flags.out, "w") as f:
      json.dump(report, f, indent=1)


if __name__ == "__main__":
  main()
