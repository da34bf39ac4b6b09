"""Convert image–caption manifests or class-per-folder trees into sharded TFRecords.

    lit-keras-convert --manifest pairs.csv --image_column path --caption_columns title,desc \
        --output_dir out/ --prefix train --num_shards 64
    lit-keras-convert --folder images/ --output_dir out/ --prefix train --num_shards 8
    lit-keras-convert --beam --manifest 'gs://b/manifests/*.jsonl' --caption_columns caption \
        --output_dir gs://b/data --prefix train --num_shards 1024 \
        --runner=DataflowRunner --project=P --region=R --temp_location=gs://b/tmp

With --beam, the same conversion runs as an Apache Beam pipeline (`lit_keras.data.beam_records`;
needs `pip install 'lit_keras[beam]'`): the manifest may be a glob of files, and the arguments
lit-keras-convert does not know are Beam's pipeline options (default: the DirectRunner).

See `lit_keras.data.records` (what is kept, re-encoded and rejected) and docs/data.md.
"""
import argparse
import os
import sys

import tensorflow as tf

from lit_keras.data import records

try:  # apache-beam is an optional extra, needed by --beam only
  from lit_keras.data import beam_records
except ImportError:
  beam_records = None


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                              epilog=__doc__.split("\n", 1)[1],
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  src = p.add_mutually_exclusive_group(required=True)
  src.add_argument("--manifest", help="A CSV, TSV or JSONL file, one image-caption row each, "
                   "e.g. --manifest pairs.csv (the format follows the extension).")
  src.add_argument("--folder", help="The root of a class-per-folder tree: each sub-folder is a "
                   "class, its name the caption and label, e.g. --folder images/ (writes "
                   "PREFIX.classes.txt).")
  p.add_argument("--image_column", default="image", help="The manifest column holding each "
                 "image's path, e.g. --image_column path (default: %(default)s).")
  p.add_argument("--caption_columns", default="caption", help="Comma-separated manifest "
                 "columns whose values are all kept as captions, e.g. --caption_columns "
                 "title,description (default: %(default)s).")
  p.add_argument("--caption_separator", default=None, help="Split each caption cell on this "
                 "string into several captions, e.g. --caption_separator '|' for tags "
                 "(default: no split).")
  p.add_argument("--label_column", default=None, help="An integer class-label column for "
                 "zero-shot evaluation, e.g. --label_column label (default: no labels).")
  p.add_argument("--id_column", default=None, help="A column of unique example ids, e.g. "
                 "--id_column key (default: the image path; duplicates are rejected).")
  p.add_argument("--image_root", default=None, help="Relative image paths are resolved "
                 "against this directory, e.g. --image_root /data/images (default: the "
                 "manifest's directory).")
  p.add_argument("--output_dir", required=True, help="Where the shards and the report go; "
                 "any tf.io.gfile path, e.g. --output_dir gs://bucket/data.")
  p.add_argument("--prefix", default="data", help="Shard file names are "
                 "PREFIX-00000-of-NNNNN.tfrecord, e.g. --prefix train (default: %(default)s).")
  p.add_argument("--num_shards", type=int, default=8, help="How many shards to write; at "
                 "least one per training host's input pipeline, e.g. --num_shards 64 "
                 "(default: %(default)s).")
  p.add_argument("--workers", type=int, default=None, help="Threads that read and "
                 "re-encode images, e.g. --workers 4 (default: one per CPU, at most one per shard).")
  p.add_argument("--beam", action="store_true", help="Run the conversion as an Apache Beam "
                 "pipeline (a manifest glob; Beam options such as --runner follow), e.g. --beam "
                 "--runner=DataflowRunner (default: this machine's processes).")
  args, beam_args = p.parse_known_args(argv)
  if beam_args and not args.beam:
    p.error(f"unrecognized arguments: {' '.join(beam_args)} (Beam options need --beam)")
  if args.beam:
    if not args.manifest:
      p.error("--beam converts manifests (--manifest), not --folder trees")
    if beam_records is None:
      p.error("--beam needs Apache Beam: pip install 'lit_keras[beam]'")
    report = beam_records.convert(
        args.manifest, args.output_dir, args.prefix, args.num_shards, beam_args,
        image_column=args.image_column, caption_columns=args.caption_columns.split(","),
        label_column=args.label_column, id_column=args.id_column, image_root=args.image_root,
        caption_separator=args.caption_separator)
  elif args.manifest:
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
  if not args.beam:
    report = records.convert(rows, args.output_dir, args.prefix, args.num_shards, args.workers,
                             rejected)
  print(f"written {report['written']}, rejected {report['rejected']} "
        f"{report['rejected_by_reason']}; report: "
        f"{os.path.join(args.output_dir, args.prefix + '.report.json')}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
