"""Build a registered offline dataset as TFRecords.

    lit-keras-build-data emoji [--out_dir DIR] [--cache_dir DIR]
    lit-keras-build-data digits --out_dir data/digits

Datasets: see `lit_keras_app.datasets` (one module each). The default --out_dir is the one the
programs use, `<cache>/data/<name>`.
"""
import argparse
import sys

from lit_keras import cache
from lit_keras_app import datasets
from lit_keras_app.datasets import npm


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("dataset", choices=datasets.names())
  p.add_argument("--out_dir", default=None, help="default: <cache>/data/<dataset>")
  p.add_argument("--cache_dir", default=None, help="where downloaded packages are cached")
  args = p.parse_args(argv)
  ds = datasets.get(args.dataset)
  out_dir = args.out_dir or ds.default_dir(args.cache_dir)
  try:
    ds.build(out_dir, cache.root(args.cache_dir))
  except npm.SourceMissingError as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  print(f"{args.dataset}: {out_dir}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
