"""Does a bigger contrastive batch give better held-out results here? A batch-size sweep of LiT
(Lu) on the project's largest offline training set, the Google-style emoji's training concepts.

    .venv/bin/python benchmarks/batch_size_sweep.py   # 12 training runs

Resumable: finished runs are kept in results.json and skipped on a re-run.

Each run is the demo's model (ported EfficientNet-Lite0 locked at 224 px, from its pre-computed
embeddings; a 4-layer BERT text tower from scratch; 128-d heads; the global softmax loss), with
the design-choice experiment's settings (benchmarks/design_choices.py: central crop, AdamW 1e-3,
10% warm-up, cosine decay) and `data.epoch_batches=True`, so no batch holds an example twice: the
largest such batch is the whole training set (1,529 examples), one epoch a step. Every batch
size sees the same number of examples (--examples, by default the demo's 300 × 256 = 76,800,
about 50 epochs), so a bigger batch takes fewer steps. 3 seeds each; evaluated on held-out
concepts (retrieval, zero-shot over the 99 subcategories) and on the 3D-style emoji.
Writes results.json, table.md and batch_size.png into --out.
"""
import argparse
import json
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import design_choices  # noqa: E402  (first: pins Keras 2, splits the CPU into 4 devices)
from absl import logging  # noqa: E402
import tensorflow as tf  # noqa: E402

from lit_keras.data import pipeline  # noqa: E402
from lit_keras_app import resolve  # noqa: E402

KEYS = [("heldout", "i2t_r@1"), ("heldout", "t2i_r@1"), ("heldout", "zero_shot_top1"),
        ("3d_train", "i2t_r@1"), ("3d_heldout", "i2t_r@1")]


def make_config(batch, seed, examples, image_size):
  steps = examples // batch
  args = argparse.Namespace(steps=steps, batch_size=batch, image_size=image_size)
  c = design_choices.make_config("Lu", seed, args)
  c.data.epoch_batches = True
  return c.lock()


def usable_examples(image_size):
  """The training set's usable examples (what an epoch of the pipeline holds)."""
  c = resolve.resolve(make_config(256, 0, 256, image_size))
  return sum(1 for _ in pipeline.eval_examples(c.data.train))


def summarize(results, out_dir):
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  batches = sorted({r["batch"] for r in results})
  lines = ["| global batch | steps | seeds | held-out i2t R@1 | held-out t2i R@1 | held-out "
           "zero-shot top-1 | 3D train-concepts i2t R@1 | 3D held-out i2t R@1 | final train "
           "loss |", "|---|---|---|---|---|---|---|---|---|"]
  stats = {}
  for b in batches:
    rs = [r for r in results if r["batch"] == b]
    cells = []
    for split, metric in KEYS:
      vals = [r[split][metric] for r in rs]
      stats[(b, split, metric)] = (statistics.mean(vals), (max(vals) - min(vals)) / 2)
      cells.append(f"{statistics.mean(vals):.3f} ± {(max(vals) - min(vals)) / 2:.3f}")
    lines.append(f"| {b} | {rs[0]['steps']} | {len(rs)} | " + " | ".join(cells)
                 + f" | {statistics.mean(r['train_loss'] for r in rs):.3f} |")
  table = "\n".join(lines)
  with open(os.path.join(out_dir, "table.md"), "w") as f:
    f.write(table + "\n\n(mean ± half the range over seeds)\n")
  fig, axes = plt.subplots(1, len(KEYS), figsize=(3.6 * len(KEYS), 3.4), dpi=100)
  for ax, (split, metric) in zip(axes, KEYS):
    means = [stats[(b, split, metric)][0] for b in batches]
    errs = [stats[(b, split, metric)][1] for b in batches]
    ax.errorbar(batches, means, yerr=errs, marker="o", capsize=3, color="#4a7ebb")
    for r in results:
      ax.plot(r["batch"], r[split][metric], ".", color="#999999", ms=4)
    ax.set_xscale("log", base=2)
    ax.set_xticks(batches, [str(b) for b in batches], fontsize=7)
    ax.set_xlabel("global batch (same examples seen)", fontsize=8)
    ax.set_title(f"{split}: {metric}", fontsize=9)
  fig.suptitle("LiT (Lu) on emoji: global batch size, 3 seeds")
  fig.tight_layout()
  fig.savefig(os.path.join(out_dir, "batch_size.png"))
  return table


def main():
  logging.set_verbosity(logging.INFO)  # the trainer's progress lines
  p = argparse.ArgumentParser()
  p.add_argument("--out", default="benchmarks/results/batch_size_sweep")
  p.add_argument("--seeds", type=int, default=3)
  p.add_argument("--batches", default="256,512,1024,all",
                 help="global batch sizes; 'all' = every usable training example")
  p.add_argument("--examples", type=int, default=300 * 256, help="examples seen per run")
  p.add_argument("--image_size", type=int, default=224)
  args = p.parse_args()
  os.makedirs(args.out, exist_ok=True)
  path = os.path.join(args.out, "results.json")
  results = json.load(open(path)) if os.path.exists(path) else []
  done = {(r["batch"], r["seed"]) for r in results}
  n = usable_examples(args.image_size)
  batches = [n if b == "all" else int(b) for b in args.batches.split(",")]
  if max(batches) > n:
    raise SystemExit(f"a batch of {max(batches)} would repeat examples: the set has {n}")
  jobs = [(b, seed) for seed in range(args.seeds) for b in batches]
  t_start = time.time()
  for i, (batch, seed) in enumerate(jobs):
    if (batch, seed) in done:
      continue
    config = make_config(batch, seed, args.examples, args.image_size)
    with tempfile.TemporaryDirectory() as wd:
      r = design_choices.run(config, tf.distribute.get_strategy(), wd)
    r.update(batch=batch, seed=seed, steps=config.total_steps,
             examples_seen=config.total_steps * batch, training_examples=n)
    results.append(r)
    with open(path, "w") as f:
      json.dump(results, f, indent=2)
    print(f"[{i + 1}/{len(jobs)}] batch {batch} seed {seed}: held-out i2t R@1 "
          f"{r['heldout']['i2t_r@1']:.3f}, zero-shot {r['heldout']['zero_shot_top1']:.3f} "
          f"({r['train_seconds']:.0f}s train, {time.time() - t_start:.0f}s total)", flush=True)
  print(summarize(results, args.out))


if __name__ == "__main__":
  main()
