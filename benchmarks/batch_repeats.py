"""How often a training batch holds the same example twice, with and without
`data.epoch_batches`, on the demo's training set (the Google-style emoji, 1,529 examples).

    .venv/bin/python benchmarks/batch_repeats.py --batch 256 --steps 50

Reads the real training pipeline (`lit_keras.data.pipeline.train_dataset`, the image bytes
undecoded: only the example ids are counted). Needs the demo's data (the README's first
command). Prints, per mode, the mean number of repeated pairs per batch (two slots holding the
same example) and the share of batches with at least one.
"""
import argparse
import collections
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import lit_keras  # noqa: E402,F401  (first: pins Keras 2)
import tensorflow as tf  # noqa: E402

from configs import demo  # noqa: E402
from lit_keras.data import pipeline  # noqa: E402
from lit_keras.data import schema  # noqa: E402
from lit_keras_app import resolve  # noqa: E402


def repeated_pairs(ids):
  return sum(n * (n - 1) // 2 for n in collections.Counter(ids).values())


def main():
  p = argparse.ArgumentParser()
  p.add_argument("--batch", type=int, default=256)
  p.add_argument("--steps", type=int, default=50)
  a = p.parse_args()
  files = pipeline.list_files(resolve.resolve(demo.get_config()).data.train)
  for epoch_batches in (False, True):
    counter = pipeline.DropCounter()
    # Ids only: a stream of (id) through the pipeline's own shuffling and batching.
    ds = pipeline.stream(files, 0, 1, a.batch,
                         lambda seed, ex: ex[schema.ID], seed=0, drop_counter=counter,
                         epoch_batches=epoch_batches)
    pairs = [repeated_pairs(b.numpy().tolist()) for b in ds.take(a.steps)]
    print(f"epoch_batches={epoch_batches}: batch {a.batch}, {a.steps} batches: "
          f"{sum(pairs) / len(pairs):.1f} repeated pairs a batch (min {min(pairs)}, max "
          f"{max(pairs)}); {sum(x > 0 for x in pairs)}/{len(pairs)} batches hold a repeat")


if __name__ == "__main__":
  main()
