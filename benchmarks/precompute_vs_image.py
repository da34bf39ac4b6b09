"""Pre-computed image embeddings vs the locked image tower in the loop: speed and memory.

    .venv/bin/python benchmarks/precompute_vs_image.py --repeats 3 [--batch_size 64 --steps 20]

The demo configuration (emoji, EfficientNet-Lite0 locked at 224 px, 4-layer BERT text tower from
scratch, Lu). Each (mode, repeat) runs in a fresh process, interleaved: `image` decodes, crops and
runs the locked tower every step; `pre` reads the cached embeddings and never loads the image
model. Reports training pairs/s, median step time, peak RSS and RSS above import as JSON lines,
then a summary (medians and ranges). Needs the demo's data and caches (run train.py on
configs/demo.py once).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import rss  # benchmarks/rss.py, next to this script

CHILD_FLAG = "--child"


def child(mode, batch_size, steps, warmup):
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  import lit_keras  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from configs import demo  # pylint: disable=g-import-not-at-top
  from lit_keras import losses  # pylint: disable=g-import-not-at-top
  from lit_keras.training import step as step_lib  # pylint: disable=g-import-not-at-top
  from lit_keras.training import task as task_lib  # pylint: disable=g-import-not-at-top
  from lit_keras_app import resolve  # pylint: disable=g-import-not-at-top
  rss_import = rss.rss_mb()
  config = demo.get_config()
  with config.unlocked():
    config.precompute.enabled = mode == "pre"
    config.batch_size = batch_size
    for spec in config.evals.values():  # no in-training evaluation: nothing to pre-compute
      spec.during_training = False
  task = task_lib.LiTTask(resolve.resolve(config)).prepare()
  model = task.build_model()
  optimizer = task.build_optimizer()
  ds = task.build_inputs(tf.distribute.InputContext())
  it = iter(ds)
  batch = next(it)
  model(batch)
  train_step = step_lib.make_train_step(model, optimizer, losses.get_loss("softmax"))
  times = []
  for i in range(warmup + steps):
    t0 = time.perf_counter()
    m = train_step(batch)
    float(m["loss"])
    batch = next(it)
    if i >= warmup:
      times.append(time.perf_counter() - t0)
  peak = rss.peak_rss_mb()
  print(json.dumps({"impl": "lit_keras", "mode": mode, "batch_size": batch_size,
                    "train_pairs_per_s": batch_size * steps / sum(times),
                    "train_step_median_s": statistics.median(times),
                    "peak_rss_mb": peak, "rss_after_import_mb": rss_import,
                    "train_peak_rss_minus_import_mb": peak - rss_import,
                    "image_model_loaded": type(model.image_tower).__name__ == "HubImageTower"}))


def main():
  p = argparse.ArgumentParser()
  p.add_argument("--repeats", type=int, default=3)
  p.add_argument("--batch_size", type=int, default=64)
  p.add_argument("--steps", type=int, default=20)
  p.add_argument("--warmup", type=int, default=3)
  p.add_argument(CHILD_FLAG, default=None)
  a = p.parse_args()
  if a.child:
    child(a.child, a.batch_size, a.steps, a.warmup)
    return
  rows = []
  for r in range(a.repeats):
    for mode in ("image", "pre"):
      out = subprocess.run([sys.executable, __file__, CHILD_FLAG, mode, "--batch_size",
                            str(a.batch_size), "--steps", str(a.steps), "--warmup",
                            str(a.warmup)], capture_output=True, text=True, check=True)
      row = json.loads(out.stdout.strip().splitlines()[-1])
      row["repeat"] = r
      rows.append(row)
      print(json.dumps(row), flush=True)
  for key in ("train_pairs_per_s", "train_peak_rss_minus_import_mb"):
    for mode in ("image", "pre"):
      vals = [r[key] for r in rows if r["mode"] == mode]
      print(f"{key:<32} {mode:<6} median {statistics.median(vals):9.1f}  "
            f"range {min(vals):.1f}–{max(vals):.1f}")


if __name__ == "__main__":
  main()
