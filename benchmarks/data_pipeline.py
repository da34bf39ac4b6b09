"""Training input pipeline throughput: decode + Inception crop + caption sampling + WordPiece
tokenisation, in examples/s, on this machine.

    .venv/bin/python benchmarks/data_pipeline.py --data "data/emoji/google-train-*.tfrecord" \
        --image_size 224 --batch_size 64 --batches 60

Build the data first: `lit-keras-build-data emoji --out_dir data/emoji`. Prints one JSON line.
"""
import argparse
import json
import os
import time

import lit_keras  # noqa: E402,F401  (first: pins Keras 2)
import tensorflow as tf  # noqa: E402

from lit_keras import towers  # noqa: E402
from lit_keras.data import pipeline  # noqa: E402
from lit_keras_app.ports import pretrained  # noqa: E402


def main():
  p = argparse.ArgumentParser()
  p.add_argument("--data", required=True)
  p.add_argument("--image_size", type=int, default=224)
  p.add_argument("--batch_size", type=int, default=64)
  p.add_argument("--batches", type=int, default=60)
  p.add_argument("--warmup", type=int, default=5)
  args = p.parse_args()
  vocab = pretrained.source_files("minilm_l6")["model/vocab.txt"]
  tok = towers.WordPieceTokenizer(vocab, seq_length=16)
  counter = pipeline.DropCounter()
  ds = pipeline.train_dataset(args.data, args.batch_size, args.image_size, tok, seed=0,
                              drop_counter=counter)
  it = iter(ds)
  for _ in range(args.warmup):
    next(it)
  t0 = time.perf_counter()
  for _ in range(args.batches):
    b = next(it)
  tf.nest.map_structure(lambda x: x.numpy(), b)
  dt = time.perf_counter() - t0
  print(json.dumps({"bench": "data_pipeline", "image_size": args.image_size,
                    "batch_size": args.batch_size, "batches": args.batches,
                    "examples_per_s": round(args.batches * args.batch_size / dt, 1),
                    "cpus": os.cpu_count(), "dropped": counter.counts()}))


if __name__ == "__main__":
  main()
