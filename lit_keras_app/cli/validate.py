"""Scan TFRecord shards and report what is in them.

    lit-keras-validate "out/train-*.tfrecord" [--embedding_dim 1280] [--json report.json]

Per shard and in total: records, decodable images, caption statistics, labels, and corrupt
records with their file and byte offset (`lit_keras.data.validate`). Exit code 1 if anything is
corrupt or undecodable.
"""
import argparse
import json
import sys

import tensorflow as tf

from lit_keras.data import pipeline
from lit_keras.data import validate


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("pattern", nargs="+", help="TFRecord files or globs")
  p.add_argument("--embedding_dim", type=int, default=None,
                 help="validate the pre-computed-embedding schema of this dimension")
  p.add_argument("--json", default=None, help="also write the report here")
  args = p.parse_args(argv)
  report = validate.validate(pipeline.list_files(args.pattern), args.embedding_dim)
  if args.json:
    with tf.io.gfile.GFile(args.json, "w") as f:
      json.dump(report, f, indent=2)
  print(f"{report['files']} files, {report['records']} records, {report['decodable']} decodable, "
        f"{report['undecodable']} undecodable, {report['captions_per_record']:.2f} captions/record "
        f"({report['empty_captions']} empty, {report['records_without_caption']} records without), "
        f"{report['mean_caption_chars']:.1f} chars/caption, {len(report['labels'])} labels")
  for c in report["corrupt"]:
    print(f"CORRUPT {c['file']} at offset {c['offset']} (after {c['records_before']} good "
          f"records): {c['error']}")
  return 1 if report["corrupt"] or report["undecodable"] else 0


if __name__ == "__main__":
  sys.exit(main())
