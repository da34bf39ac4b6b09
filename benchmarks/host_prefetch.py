"""Evaluation's image embedding on the host CPU, with and without prefetching the input pipeline.

    .venv/bin/python benchmarks/host_prefetch.py --repeats 3

The demo's 3D-emoji training split (1,482 PNG images: decode, central crop, resize to 224)
through the ported EfficientNet-Lite0, batch 64, one device, the tower called as the
pre-computation calls it. `prefetch`: `lit_keras.evaluation.sharded_map` (the path of evaluation
and of the pre-computation; its input pipeline prefetches, so the next batch is decoded while the
model runs, on the same cores). `no_prefetch`: the same pipeline without the prefetch, a batch
decoded while the model waits. Also the pipeline alone and the model alone on in-memory batches.
All in one process, alternating, after one warm-up pass of each variant. Needs the demo's data
and port (run the README's first command once).

Measured 2026-12-06 on a 2-core Xeon (`benchmarks/results/host_prefetch_2026-12-06.txt`):
prefetch 129.7 (71.4–131.3), no_prefetch 136.4 (133.7–139.1) images/s, medians of 3. Either
variant sometimes drops to ~71 images/s on this machine (decoding and model threads contending);
no difference beyond that noise was shown, so `sharded_map` keeps its prefetch.
"""
import argparse
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main():
  p = argparse.ArgumentParser(description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--repeats", type=int, default=3)
  p.add_argument("--batch_size", type=int, default=64)
  a = p.parse_args()
  import lit_keras  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import  (Keras 2)
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  from lit_keras import cache  # pylint: disable=g-import-not-at-top
  from lit_keras import towers  # pylint: disable=g-import-not-at-top
  from lit_keras.data import pipeline  # pylint: disable=g-import-not-at-top
  from lit_keras.evaluation import sharded  # pylint: disable=g-import-not-at-top
  from lit_keras_app.ports import pretrained  # pylint: disable=g-import-not-at-top

  pattern = cache.path("data", "emoji_3d", "3d-train-*.tfrecord")
  handle = pretrained.export_paths()["efficientnet_lite0_feature_vector"]
  tower = towers.HubImageTower(handle, state=towers.LOCKED, image_size=224)
  images = lambda: pipeline.eval_examples(pattern).map(lambda ex: ex["image"])
  count = int(images().reduce(0, lambda n, _: n + 1))
  prepare = lambda data: pipeline.eval_image(data, 224)
  # As the pre-computation calls it: the hub module's restored graph function, called eagerly.
  fn = lambda x: tower(x, training=False)

  def embed(prefetch):
    t0 = time.perf_counter()
    if prefetch:
      sharded.sharded_map(fn, images, count, a.batch_size, prepare=prepare)
    else:
      ds = images().map(prepare, num_parallel_calls=tf.data.AUTOTUNE).batch(a.batch_size)
      for b in ds:
        fn(b).numpy()
    return count / (time.perf_counter() - t0)

  def pipeline_alone():
    ds = images().map(prepare, num_parallel_calls=tf.data.AUTOTUNE).batch(a.batch_size)
    t0 = time.perf_counter()
    for _ in ds:
      pass
    return count / (time.perf_counter() - t0)

  batch = tf.random.uniform([a.batch_size, 224, 224, 3], seed=0)

  def model_alone(steps=8):
    fn(batch).numpy()
    t0 = time.perf_counter()
    for _ in range(steps):
      fn(batch).numpy()
    return steps * a.batch_size / (time.perf_counter() - t0)

  embed(True), embed(False)  # warm-up: tracing, file cache
  rows = {"prefetch": [], "no_prefetch": [], "pipeline_alone": [], "model_alone": []}
  for r in range(a.repeats):
    for name, run in (("prefetch", lambda: embed(True)), ("no_prefetch", lambda: embed(False)),
                      ("pipeline_alone", pipeline_alone), ("model_alone", model_alone)):
      v = run()
      rows[name].append(v)
      print(json.dumps({"mode": name, "repeat": r, "images": count, "images_per_s": round(v, 1)}),
            flush=True)
  for name, v in rows.items():
    print(f"{name:15s} images/s median {statistics.median(v):.1f} "
          f"(range {min(v):.1f}–{max(v):.1f}, n={len(v)})")


if __name__ == "__main__":
  main()
