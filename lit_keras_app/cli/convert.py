"""Convert image–caption manifests or class-per-folder trees into sharded TFRecords.

    lit-keras-convert --manifest pairs.csv --image_column path --caption_columns title,desc \
        --output_dir out/ --prefix train --num_shards 64
    lit-keras-convert --folder images/ --output_dir out/ --prefix train --num_shards 8

See `lit_keras.data.records` (what is kept, re-encoded and rejected) and docs/data.md.
"""
import argparse
import os
import sys

import tensorflow as tf

from lit_keras.data import records


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  src = p.add_mutually_exclusive_group(required=True)
  src.add_argument("--manifest", help="CSV, TSV or JSONL manifest")
  src.add_argument("--folder", help="root of a class-per-folder tree")
  p.add_argument("--image_column", default="image")
  p.add_argument("--caption_columns", default="caption", help="comma-separated")
  p.add_argument("--caption_separator", default=None)
  p.add_argument("--label_column", default=None)
  p.add_argument("--id_column", default=None)
  p.add_argument("--image_root", default=None, help="default: the manifest's directory")
  p.add_argument("--output_dir", required=True)
  p.add_argument("--prefix", default="data")
  p.add_argument("--num_shards", type=int, default=8)
  p.add_argument("--workers", type=int, default=None)
  args = p.parse_args(argv)
  if args.manifest:
    rows, rejected = records.read_manifest(args.manifest, args.image_column,
                                           args.caption_columns.split(","), args.label_column,
                                           args.id_column, args.image_root,
                                           args.caption_separator)
  else:
    rows, classes = records.read_folders(args.folder)
    rejected = []
    tf.io.gfile.makedirs(args.output_dir)
    with tf.io.gfile.GFile(os.path.join(args.output_dir, f"{args.prefix}.classes.txt"), "w") as f:
      f.write("\n".join(classes) + "\n")
  report = records.convert(rows, args.output_dir, args.prefix, args.num_shards, args.workers, rejected)
  print(f"written {report['written']}, rejected {report['rejected']} "
        f"{report['rejected_by_reason']}; report: "
        f"{os.path.join(args.output_dir, args.prefix + '.report.json')}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
