"""Training steps/s with `steps_per_loop` 1 vs 20: one host dispatch per step vs 20 steps in one
`tf.function` call (a `tf.while_loop`, as TPUs need).

    .venv/bin/python benchmarks/steps_per_loop.py --repeats 3 --out benchmarks/results/steps_per_loop

Shapes:
  tiny-pre  the bench-tiny shape trained from pre-computed image features (random [128, 192]
            features, 4-layer width-256 text tower, batch 128): the shape where per-step host
            overhead shows most.
  demo      the demo configuration (configs/demo.py: emoji, pre-computed EfficientNet-Lite0
            features, batch 256), its real input pipeline. Needs the demo's caches (run the
            README's first command once).

Each (shape, steps_per_loop, repeat) runs in a fresh process, interleaved; the runner is
`lit_keras.training.runner.LiTTrainer`, timed over whole loop calls after two warm-up calls.
Writes runs.jsonl and summary.md into --out.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHAPES = ("tiny-pre", "demo")


def child(shape, steps_per_loop, steps):
  sys.path.insert(0, ROOT)
  sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
  import lit_keras  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import
  import numpy as np  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  import tf_keras  # pylint: disable=g-import-not-at-top

  from lit_keras.training import runner  # pylint: disable=g-import-not-at-top
  from lit_keras.training import step as step_lib  # pylint: disable=g-import-not-at-top
  tf.config.threading.set_inter_op_parallelism_threads(1)
  strategy = tf.distribute.get_strategy()
  if shape == "tiny-pre":
    import bench_tiny  # pylint: disable=g-import-not-at-top
    a = bench_tiny.parse_args([])
    tf_keras.utils.set_random_seed(0)
    model, batches = bench_tiny.build(a, "pre")
    model(batches[0])
    stacked = tf.nest.map_structure(lambda *x: np.stack([np.asarray(t) for t in x]), *batches)
    dataset = strategy.distribute_datasets_from_function(
        lambda ctx: tf.data.Dataset.from_tensor_slices(stacked).repeat())
    optimizer = tf_keras.optimizers.AdamW(1e-3, weight_decay=0.01)
    batch = a.batch
  else:
    from configs import demo  # pylint: disable=g-import-not-at-top
    from lit_keras.training import task as task_lib  # pylint: disable=g-import-not-at-top
    from lit_keras.training import trainer  # pylint: disable=g-import-not-at-top
    from lit_keras_app import resolve  # pylint: disable=g-import-not-at-top
    task = task_lib.LiTTask(resolve.resolve(demo.get_config())).prepare()
    trainer.setup(task.config)
    model = trainer.build_model(task, strategy)
    optimizer = task.build_optimizer()
    dataset = strategy.distribute_datasets_from_function(lambda ctx: task.build_inputs(ctx))
    batch = task.config.batch_size
  model.compile(optimizer, loss="softmax")
  step_lib.build_optimizers(model, optimizer, None, strategy)
  loop = runner.LiTTrainer(model, strategy, dataset, steps_per_loop)
  for _ in range(2):  # trace, then one warm call
    loop.train(tf.constant(steps_per_loop))
  calls = max(steps // steps_per_loop, 1)
  t0 = time.perf_counter()
  for _ in range(calls):
    loop.train(tf.constant(steps_per_loop))
  seconds = time.perf_counter() - t0
  n = calls * steps_per_loop
  return {"shape": shape, "steps_per_loop": steps_per_loop, "steps": n, "seconds": seconds,
          "steps_per_s": n / seconds, "pairs_per_s": n * batch / seconds, "batch": batch,
          "loss_last": float(loop.history[-1, loop.names.index("loss")]),
          "loadavg_1m_end": os.getloadavg()[0]}


def main():
  p = argparse.ArgumentParser()
  p.add_argument("--repeats", type=int, default=3)
  p.add_argument("--shapes", default=",".join(SHAPES))
  p.add_argument("--loops", default="1,20")
  p.add_argument("--steps", type=int, default=200, help="timed steps (tiny-pre; demo: 60)")
  p.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "results", "steps_per_loop"))
  p.add_argument("--child", default=None, help=argparse.SUPPRESS)
  p.add_argument("--steps_per_loop", type=int, default=1, help=argparse.SUPPRESS)
  a = p.parse_args()
  if a.child:
    print(json.dumps(child(a.child, a.steps_per_loop, a.steps)), flush=True)
    return
  os.makedirs(a.out, exist_ok=True)
  rows = []
  for r in range(a.repeats):
    for shape in a.shapes.split(","):
      for spl in (int(x) for x in a.loops.split(",")):
        steps = a.steps if shape == "tiny-pre" else 60
        out = subprocess.run([sys.executable, os.path.abspath(__file__), f"--child={shape}",
                              f"--steps_per_loop={spl}", f"--steps={steps}"],
                             stdout=subprocess.PIPE, text=True, check=True).stdout
        row = dict(json.loads(out.strip().splitlines()[-1]), repeat=r)
        print(json.dumps(row), flush=True)
        rows.append(row)
  with open(os.path.join(a.out, "runs.jsonl"), "w") as f:
    f.writelines(json.dumps(x) + "\n" for x in rows)
  lines = ["| shape | steps_per_loop | runs | steps/s median (range) | pairs/s median | "
           "× vs steps_per_loop 1 |", "|---|---|---|---|---|---|"]
  for shape in a.shapes.split(","):
    base = None
    for spl in (int(x) for x in a.loops.split(",")):
      v = [x["steps_per_s"] for x in rows if x["shape"] == shape and x["steps_per_loop"] == spl]
      pairs = [x["pairs_per_s"] for x in rows
               if x["shape"] == shape and x["steps_per_loop"] == spl]
      med = statistics.median(v)
      base = base or med
      lines.append(f"| {shape} | {spl} | {len(v)} | {med:.2f} ({min(v):.2f}–{max(v):.2f}) | "
                   f"{statistics.median(pairs):.0f} | {med / base:.2f} |")
  table = "\n".join(lines)
  with open(os.path.join(a.out, "summary.md"), "w") as f:
    f.write(table + "\n\n(`.venv/bin/python benchmarks/steps_per_loop.py --repeats "
            f"{a.repeats}`)\n")
  print(table)


if __name__ == "__main__":
  main()
