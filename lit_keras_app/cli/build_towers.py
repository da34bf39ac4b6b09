"""Build the offline pretrained towers (EfficientNet-Lite0, MiniLM-L6) as TF-Hub-format
SavedModels in the cache.

    lit-keras-build-towers [--cache_dir DIR] [--only efficientnet_lite0]

See `lit_keras_app.ports.pretrained` and docs/ports.md. Idempotent.
"""
import argparse
import sys

from lit_keras import cache
from lit_keras_app.ports import pretrained


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--cache_dir", default=None,
                      help=f"default: $LIT_KERAS_CACHE or ~/.cache/lit_keras (now {cache.root()})")
  parser.add_argument("--only", choices=sorted(pretrained.BUILDERS), action="append",
                      help="build only this tower (repeatable)")
  args = parser.parse_args(argv)
  try:
    paths = pretrained.build(tuple(args.only or pretrained.BUILDERS), args.cache_dir)
  except pretrained.SourceMissingError as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  for k, v in paths.items():
    print(f"{k}: {v}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
