"""Pre-compute a locked image tower's embeddings once (LiT's main speed and memory win).

    lit-keras-precompute --handle PATH_OR_URL --image_size 224 --data "data/emoji/google-train-*" \
        [--value_range 0,1] [--crop_fraction 1.0] [--cache_dir DIR]

Runs the tower over every image (central crop) and writes the embedding schema into the cache,
keyed by the tower, its preprocessing and the input files (`lit_keras.data.embeddings`); prints
the output directory. The replicas of the strategy share the images (each embedded once, on one
replica) and the chief writes the files. `train.py` does this itself when `precompute.enabled`.
"""
import argparse
import sys

from lit_keras import cache
from lit_keras.data import embeddings
from lit_keras.training import strategy as strategy_lib
from lit_keras.training import task as task_lib


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--handle", required=True)
  p.add_argument("--image_size", type=int, required=True)
  p.add_argument("--value_range", default="0,1")
  p.add_argument("--output_key", default=None)
  p.add_argument("--crop_fraction", type=float, default=1.0)
  p.add_argument("--data", required=True)
  p.add_argument("--cache_dir", default=None, help=f"default: {cache.root()}")
  p.add_argument("--batch_size", type=int, default=64, help="per replica")
  p.add_argument("--strategy", default="auto", choices=strategy_lib.STRATEGIES)
  p.add_argument("--tpu", default=None)
  p.add_argument("--cpu_devices", type=int, default=0,
                 help="split the CPU into this many devices (simulates a multi-replica host)")
  a = p.parse_args(argv)
  source = embeddings.image_source(a.handle, a.image_size,
                                   [float(v) for v in a.value_range.split(",")], a.output_key,
                                   a.crop_fraction)
  strategy = strategy_lib.create_strategy(a.strategy, a.tpu, a.cpu_devices)
  embed_files = task_lib.image_file_embedder(source, strategy, a.batch_size)
  out, _, _ = embeddings.precompute(embed_files, source, a.data, cache.root(a.cache_dir),
                                    writer=strategy.extended.should_checkpoint)
  print(out)
  return 0


if __name__ == "__main__":
  sys.exit(main())
