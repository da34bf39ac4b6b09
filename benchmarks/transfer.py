"""Zero-shot transfer beyond the training style: `configs/broad.py` (Google emoji + 3D emoji +
Open Clip Art training concepts, EfficientNet-Lite0 locked) in Lu and LU, trained on all three
sources and with each source left out, several seeds; every run evaluated on the held-out emoji
concepts, the held-out Open Clip Art concepts (retrieval, and zero-shot into its 20 top-level
categories) and the held-out concepts in the 3D style.

    .venv/bin/python benchmarks/transfer.py --out docs/transfer     # resumable

Finished runs are kept in results.json and skipped on a re-run; `--settings`, `--leave_out` and
`--seeds` choose a part of the grid. Writes results.json, table.md and transfer.png into --out.
"""
import argparse
import json
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks import design_choices  # noqa: E402  (pins Keras 2; the shared train + evaluate)
from absl import logging  # noqa: E402
import tensorflow as tf  # noqa: E402

from configs import broad  # noqa: E402

# (column, evaluator, metric); chance levels are in docs/transfer.md.
COLUMNS = [("emoji i2t R@1", "emoji_heldout_retrieval", "i2t_r@1"),
           ("emoji zero-shot", "emoji_heldout_zero_shot", "top1"),
           ("OCA i2t R@1", "openclipart_heldout_retrieval", "i2t_r@1"),
           ("OCA t2i R@1", "openclipart_heldout_retrieval", "t2i_r@1"),
           ("OCA categories", "openclipart_heldout_categories", "top1"),
           ("3D i2t R@1", "style3d_heldout_retrieval", "i2t_r@1"),
           ("3D zero-shot", "style3d_heldout_zero_shot", "top1")]


def run_name(setting, leave_out):
  return f"{setting}, " + (f"without {leave_out}" if leave_out else "all three")


def summarize(results, out_dir):
  groups = {}
  for r in results:
    groups.setdefault(r["name"], []).append(r)
  lines = ["| training sources | seeds | " + " | ".join(c for c, _, _ in COLUMNS)
           + " | train s/run |", "|---" * (len(COLUMNS) + 3) + "|"]
  stats = {}
  for name, rs in groups.items():
    cells = []
    for col, ev, metric in COLUMNS:
      vals = [r["results"][ev][metric] for r in rs]
      stats[(name, col)] = (statistics.mean(vals), (max(vals) - min(vals)) / 2)
      cells.append("{:.3f} ± {:.3f}".format(*stats[(name, col)]))
    secs = statistics.mean(r["train_seconds"] for r in rs)
    lines.append(f"| {name} | {len(rs)} | " + " | ".join(cells) + f" | {secs:.0f} |")
  table = "\n".join(lines)
  with open(os.path.join(out_dir, "table.md"), "w") as f:
    f.write(table + "\n\n(mean ± half the range over seeds)\n")
  names = list(groups)
  design_choices.bar_panels(os.path.join(out_dir, "transfer.png"), names,
                            [(col, [stats[(n, col)] for n in names]) for col, _, _ in COLUMNS],
                            "Transfer to held-out concepts and styles (configs/broad.py)",
                            width=3.2, rotation=60)
  return table


def main():
  logging.set_verbosity(logging.INFO)  # the trainer's progress lines
  p = argparse.ArgumentParser()
  p.add_argument("--out", default="docs/transfer")
  p.add_argument("--seeds", type=int, default=3)
  p.add_argument("--settings", default="Lu,LU")
  p.add_argument("--leave_out", default="none," + ",".join(broad.SOURCES),
                 help="which runs: 'none' (all three sources) and/or sources to leave out")
  args = p.parse_args()
  os.makedirs(args.out, exist_ok=True)
  path = os.path.join(args.out, "results.json")
  results = json.load(open(path)) if os.path.exists(path) else []
  done = {(r["name"], r["seed"]) for r in results}
  jobs = [(setting, "" if lo == "none" else lo, seed) for setting in args.settings.split(",")
          for lo in args.leave_out.split(",") for seed in range(args.seeds)]
  t_start = time.time()
  for i, (setting, leave_out, seed) in enumerate(jobs):
    name = run_name(setting, leave_out)
    if (name, seed) in done:
      continue
    config = broad.get_config(setting + (f",leave_out={leave_out}" if leave_out else ""))
    with config.unlocked():
      config.seed = seed
      config.eval_every = 0  # evaluated once, after training
    with tempfile.TemporaryDirectory() as wd:
      metrics, res, train_s = design_choices.train_and_evaluate(
          config, tf.distribute.get_strategy(), wd)
    results.append({"name": name, "setting": setting, "leave_out": leave_out, "seed": seed,
                    "train_loss": metrics["loss"], "train_seconds": train_s,
                    "results": {k: {m: v for m, v in r.items() if isinstance(v, (int, float))}
                                for k, r in res.items()}})
    with open(path, "w") as f:
      json.dump(results, f, indent=2)
    print(f"[{i + 1}/{len(jobs)}] {name} seed {seed}: " + ", ".join(
        f"{col} {res[ev][metric]:.3f}" for col, ev, metric in COLUMNS)
          + f" ({train_s:.0f}s train, {time.time() - t_start:.0f}s total)", flush=True)
  print(summarize(results, args.out))


if __name__ == "__main__":
  main()
