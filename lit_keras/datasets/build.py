"""Build the offline datasets as TFRecords.

    lit-keras-build-data emoji  --out_dir data/emoji  [--cache_dir DIR] [--google_dir D] [--fluent_dir D]
    lit-keras-build-data digits --out_dir data/digits
"""
import argparse
import os
import sys


def main(argv=None):
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  from lit_keras.convert import pretrained  # pylint: disable=g-import-not-at-top
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("dataset", choices=["emoji", "digits"])
  p.add_argument("--out_dir", required=True)
  p.add_argument("--cache_dir", default=None, help="where npm packages are cached")
  p.add_argument("--google_dir", default=None, help="an unpacked emoji-datasource-google")
  p.add_argument("--fluent_dir", default=None, help="an unpacked @lobehub/fluent-emoji-3d")
  p.add_argument("--num_shards", type=int, default=4)
  args = p.parse_args(argv)
  if args.dataset == "digits":
    from lit_keras.datasets import digits  # pylint: disable=g-import-not-at-top
    print(digits.build(args.out_dir))
    return 0
  from lit_keras.datasets import emoji  # pylint: disable=g-import-not-at-top
  try:
    emoji.build(args.out_dir, args.cache_dir or pretrained.default_cache_dir(),
                args.google_dir, args.fluent_dir, args.num_shards)
  except emoji.SourceMissingError as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  return 0


if __name__ == "__main__":
  sys.exit(main())
