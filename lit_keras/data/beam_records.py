"""The manifest converter as an Apache Beam pipeline: the same rows, checks and shards at scale.

`lit_keras.data.records.convert` runs on one machine's processes: right for thousands to
millions of images. This pipeline does the same work on any Beam runner — the DirectRunner
locally, Dataflow, Flink or Spark at scale:

1. each manifest file (a glob of CSV/TSV/JSONL files, read in parallel) is parsed by
   `records.read_manifest` (same columns, captions, labels, ids, rejections);
2. rows sharing an id keep the first (manifest file order, then row order), the others are
   rejected as duplicates, as the local converter does;
3. every row's image is read, checked and encoded by `records.encode_row` on the workers (the
   heavy part, spread over all rows);
4. each shard (`records.shard_of(id)`) is written atomically in row order by
   `records.write_shard`, with the same names and done-markers; shards finished by an earlier run
   are skipped (resumable), and `PREFIX.report.json` is written as by the local converter.

So for the same manifest, the shards are byte-for-byte those the local converter writes, and the
report holds the same counts and rejected rows. Needs `apache-beam` (`pip install
'lit_keras[beam]'`); `lit-keras-convert --beam` runs it.
"""
import json
import os

import apache_beam as beam
import tensorflow as tf

from lit_keras.data import records


def _read(indexed_path, reader_kwargs):
  """Rows ((file index, row index), row) of one manifest; its rejections tagged "rejected"."""
  index, path = indexed_path
  rows, rejected = records.read_manifest(path, **reader_kwargs)
  for n, (where, reason) in enumerate(rejected):
    yield beam.pvalue.TaggedOutput("rejected", ((index, -1, n), where, reason))
  for n, row in enumerate(rows):
    yield (index, n), row


def _first_of_id(keyed):
  """Keeps the first row of an id; the others are rejected as duplicates."""
  _, rows = keyed
  rows = sorted(rows, key=lambda r: r[0])
  yield rows[0]
  for order, row in rows[1:]:
    yield beam.pvalue.TaggedOutput(
        "rejected", ((*order, 0), row["where"], f"duplicate id {row['id']!r}"))


def _encode(ordered_row, num_shards):
  order, row = ordered_row
  example, reason = records.encode_row(row)
  return records.shard_of(row["id"], num_shards), (order, row["where"], example, reason)


def _write(keyed, output_dir, prefix, num_shards):
  index, items = keyed
  path = records.shard_path(output_dir, prefix, index, num_shards)
  done = records.finished_shard(path)
  if done is not None:
    return dict(done, skipped=True)
  items = sorted((i for i in items if i is not None), key=lambda i: i[0])
  encoded = ((where, example, reason) for _, where, example, reason in items)
  return dict(records.write_shard(path, encoded, len(items)), skipped=False)


def _report(shard_reports, rejected, output_dir, prefix, num_shards):
  rejected = [(where, reason) for _, where, reason in sorted(rejected, key=lambda r: r[0])]
  shard_reports = sorted(shard_reports, key=lambda r: r["shard"])
  return records.write_report(output_dir, prefix, num_shards, shard_reports, rejected)


def build(pipeline, manifest, output_dir, prefix, num_shards, *, image_column="image",
          caption_columns=("caption",), label_column=None, id_column=None, image_root=None,
          caption_separator=None):
  """Adds the conversion to a `beam.Pipeline`; returns the PCollection of its one report.

  Args:
    manifest: a glob (or list of globs) of manifest files, read in sorted order.
    (the rest as `lit-keras-convert`).
  """
  patterns = [manifest] if isinstance(manifest, str) else list(manifest)
  files = sorted(f for p in patterns for f in tf.io.gfile.glob(p))
  if not files:
    raise FileNotFoundError(f"no manifest matches {manifest!r}")
  tf.io.gfile.makedirs(output_dir)
  reader_kwargs = dict(image_column=image_column, caption_columns=list(caption_columns),
                       label_column=label_column, id_column=id_column, image_root=image_root,
                       caption_separator=caption_separator)
  # Decided once, before any shard is written: rows of shards already done are not re-encoded.
  done = {i for i in range(num_shards)
          if records.finished_shard(records.shard_path(output_dir, prefix, i, num_shards))}
  read = (pipeline
          | "Manifests" >> beam.Create(list(enumerate(files)))
          | "Read" >> beam.FlatMap(_read, reader_kwargs).with_outputs("rejected", main="rows"))
  unique = (read.rows
            | "ById" >> beam.Map(lambda r: (r[1]["id"], r))
            | "GroupById" >> beam.GroupByKey()
            | "FirstOfId" >> beam.FlatMap(_first_of_id).with_outputs("rejected", main="rows"))
  encoded = (unique.rows
             | "NotDone" >> beam.Filter(
                 lambda r: records.shard_of(r[1]["id"], num_shards) not in done)
             | "Spread" >> beam.Reshuffle()
             | "Encode" >> beam.Map(_encode, num_shards))
  every_shard = pipeline | "EveryShard" >> beam.Create([(i, None) for i in range(num_shards)])
  shard_reports = ((encoded, every_shard)
                   | "AllShards" >> beam.Flatten()
                   | "GroupByShard" >> beam.GroupByKey()
                   | "Write" >> beam.Map(_write, output_dir, prefix, num_shards))
  rejected = ((read.rejected, unique.rejected)
              | "Rejected" >> beam.Flatten()
              | "RejectedList" >> beam.combiners.ToList())
  return (shard_reports
          | "Reports" >> beam.combiners.ToList()
          | "Report" >> beam.Map(_report, beam.pvalue.AsSingleton(rejected), output_dir,
                                 prefix, num_shards))


def convert(manifest, output_dir, prefix, num_shards, pipeline_options=None, **reader_kwargs):
  """Runs the conversion (default: the DirectRunner); returns the report (as written to
  PREFIX.report.json)."""
  options = beam.options.pipeline_options.PipelineOptions(pipeline_options or [])
  with beam.Pipeline(options=options) as p:
    build(p, manifest, output_dir, prefix, num_shards, **reader_kwargs)
  with tf.io.gfile.GFile(os.path.join(output_dir, f"{prefix}.report.json")) as f:
    return json.load(f)
