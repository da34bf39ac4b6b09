"""Where a training step's time goes, op by op: TensorFlow's profiler over bench-tiny steps.

    .venv/bin/python benchmarks/profile_step.py --mode pre --steps 5
    TF_CPU_ALLOCATOR_USE_BFC=false .venv/bin/python benchmarks/profile_step.py --mode pre

Builds one mode of the bench-tiny shape exactly as `benchmarks/bench_tiny.py` does (`lu`
needs its exported ViT: `--hub_dir`, made once by `bench_tiny.py --child=export
--hub_dir=DIR`), runs the library's train step (graph mode: under XLA the profiler sees one
compiled cluster, not its ops) for a few warm-up steps, then records `--steps` steps with
`tf.profiler.experimental` and sums the TensorFlow ops' own times from the trace by op type
(and, with `--top_nodes`, by node). The profiler slows every op down, so read the shares, not
the step time; the plain step time is measured first, without the profiler. Prints a table and
writes JSON to `--out` if given.
"""
import argparse
import collections
import glob
import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main():
  p = argparse.ArgumentParser(description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--mode", default="pre", choices=("lu", "uu", "pre"))
  p.add_argument("--hub_dir", default=None, help="lu: the exported locked ViT")
  p.add_argument("--warmup", type=int, default=4)
  p.add_argument("--steps", type=int, default=5)
  p.add_argument("--top_ops", type=int, default=15)
  p.add_argument("--top_nodes", type=int, default=0)
  p.add_argument("--out", default=None)
  a = p.parse_args()
  if a.mode == "lu" and not a.hub_dir:
    raise SystemExit("--mode lu needs --hub_dir (bench_tiny.py --child=export --hub_dir=DIR)")

  import lit_keras  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import  (Keras 2)
  import bench_tiny  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from tensorflow.tsl.profiler.protobuf import xplane_pb2  # pylint: disable=g-import-not-at-top


  b = bench_tiny.parse_args([f"--hub_dir={a.hub_dir}"] if a.hub_dir else [])
  _, batches, step = bench_tiny.build_step(b, a.mode, jit=False)

  def run(n, start):
    t0 = time.perf_counter()
    for i in range(start, start + n):
      float(step(batches[i % len(batches)])["loss"])  # float() waits for the step
    return (time.perf_counter() - t0) / n

  run(a.warmup, 0)
  plain = run(a.steps, a.warmup)
  with tempfile.TemporaryDirectory() as logdir:
    tf.profiler.experimental.start(logdir)
    profiled = run(a.steps, a.warmup + a.steps)
    tf.profiler.experimental.stop()
    space = xplane_pb2.XSpace()
    with open(glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True)[0], "rb") as f:
      space.ParseFromString(f.read())

  by_type, calls, by_node = collections.Counter(), collections.Counter(), collections.Counter()
  for plane in space.planes:
    if "host:CPU" not in plane.name:
      continue
    for line in plane.lines:
      if not line.name.startswith("tf_Compute"):  # the executor's op events
        continue
      for ev in line.events:
        name = plane.event_metadata[ev.metadata_id].name  # "node name:OpType"
        if ":" not in name or name.startswith("ExecutorState:"):  # the executor's own span
          continue
        node, op = name.rsplit(":", 1)
        seconds = ev.duration_ps / 1e12 / a.steps
        by_type[op] += seconds
        calls[op] += 1
        by_node[node] += seconds
  total = sum(by_type.values())
  print(f"mode {a.mode}: {plain:.3f} s/step without the profiler "
        f"({b.batch / plain:.1f} pairs/s), {profiled:.3f} s/step profiled; "
        f"ops' own time {total:.3f} s/step (TF_CPU_ALLOCATOR_USE_BFC="
        f"{os.environ.get('TF_CPU_ALLOCATOR_USE_BFC')})")
  print(f"{'op type':32s} {'ms/step':>9s} {'share':>6s} {'calls/step':>10s}")
  for op, s in by_type.most_common(a.top_ops):
    print(f"{op:32s} {s * 1000:9.1f} {s / total:6.1%} {calls[op] // a.steps:10d}")
  for node, s in by_node.most_common(a.top_nodes):
    print(f"{s * 1000:8.1f} ms  {node}")
  if a.out:
    with open(a.out, "a") as f:
      f.write(json.dumps({
          "mode": a.mode, "step_s": plain, "profiled_step_s": profiled, "ops_s": total,
          "allocator_bfc": os.environ.get("TF_CPU_ALLOCATOR_USE_BFC"),
          "by_type_ms": {k: round(v * 1000, 2) for k, v in by_type.most_common()},
          "calls_per_step": {k: v // a.steps for k, v in calls.items()}}) + "\n")


if __name__ == "__main__":
  main()
