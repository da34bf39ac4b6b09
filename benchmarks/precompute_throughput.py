"""The pre-compute command's images/s vs the raw forward of the locked image tower.

    .venv/bin/python benchmarks/precompute_throughput.py --repeats 3

Demo configuration: the ported EfficientNet-Lite0 (TF-Hub feature vector, 224 px, batch 64).
`raw`: the tower's forward on in-memory random batches (the ceiling). `precompute`: the
`lit-keras-precompute` code path (`lit_keras.data.embeddings.precompute`) over the Google-style emoji
training split (1,529 images, 4 shards) into an empty cache: TFRecord read, PNG decode, resize,
forward and writing the embedding TFRecords, timed end to end from the call (module load and
tracing included). Each (mode, repeat) runs in a fresh process, interleaved; JSON lines, then
medians and ranges. Needs the demo's data and ports (run the README's first command once).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def child(mode, a):
  sys.path.insert(0, ROOT)
  import lit_keras  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  from configs import demo  # pylint: disable=g-import-not-at-top
  from lit_keras.data import embeddings  # pylint: disable=g-import-not-at-top
  from lit_keras.training import task as task_lib  # pylint: disable=g-import-not-at-top
  from lit_keras_app import resolve  # pylint: disable=g-import-not-at-top
  task = task_lib.LiTTask(resolve.resolve(demo.get_config()))
  config, source = task.config, task.image_source()
  size = source["image_size"]
  if mode == "raw":
    tower = task.build_image_tower("L")  # the tower the pre-compute command runs
    embed = tf.function(lambda x: tower(x, training=False))
    batches = [tf.random.uniform([a.batch_size, size, size, 3], seed=i) for i in range(2)]
    for i in range(3):
      embed(batches[i % 2]).numpy()
    t0 = time.perf_counter()
    for i in range(a.steps):
      embed(batches[i % 2]).numpy()
    seconds = time.perf_counter() - t0
    count = a.steps * a.batch_size
  else:
    with tempfile.TemporaryDirectory() as tmp:
      t0 = time.perf_counter()
      _, _, count = embeddings.precompute(
          task_lib.image_file_embedder(source, batch_size=a.batch_size), source,
          config.data.train, tmp, log=lambda m: print(m, file=sys.stderr))
      seconds = time.perf_counter() - t0
  return {"mode": mode, "images": count, "seconds": seconds, "images_per_s": count / seconds,
          "batch_size": a.batch_size, "loadavg_1m_end": os.getloadavg()[0]}


def main():
  p = argparse.ArgumentParser()
  p.add_argument("--repeats", type=int, default=3)
  p.add_argument("--batch_size", type=int, default=64)
  p.add_argument("--steps", type=int, default=10, help="timed batches of the raw forward")
  p.add_argument("--child", default=None)
  a = p.parse_args()
  if a.child:
    print(json.dumps(child(a.child, a)), flush=True)
    return
  runs = []
  for r in range(a.repeats):
    for mode in ("raw", "precompute"):
      out = subprocess.run([sys.executable, os.path.abspath(__file__), f"--child={mode}",
                            f"--batch_size={a.batch_size}", f"--steps={a.steps}"],
                           stdout=subprocess.PIPE, text=True, check=True).stdout
      res = json.loads(out.strip().splitlines()[-1])
      res["repeat"] = r
      print(json.dumps(res), flush=True)
      runs.append(res)
  for mode in ("raw", "precompute"):
    v = [x["images_per_s"] for x in runs if x["mode"] == mode]
    print(f"{mode:10s} images/s median {statistics.median(v):.1f} "
          f"(range {min(v):.1f}–{max(v):.1f}, n={len(v)})")


if __name__ == "__main__":
  main()
