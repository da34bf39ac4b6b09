"""The paper's design-choice experiment in miniature (LiT §4.2, Fig. 3 / Table 2).

    .venv/bin/python benchmarks/design_choices.py --out docs/design_choices   # ≈ 1.5–1.75 h, 2 cores

Resumable: finished runs are kept in results.json and skipped on a re-run.

Settings Lu, LU, Uu, UU, uu, UL (image letter first) × 3 seeds on the same data (Google-style
emoji, training concepts), resolution, batch, step budget and evaluation; pretrained image
tower = the ported EfficientNet-Lite0, pretrained text tower = the ported MiniLM-L6 (mean
pooling), "u" = the same kind of tower from scratch (text: 4-layer BERT with the MiniLM
vocabulary; image: a ViT-Ti-sized model). No augmentation (central crop) for every setting, so a
locked image tower can use pre-computed embeddings — mathematically the same model. Also: Lu with
the global-batch loss vs the per-replica loss at the same global batch on 4 logical CPU devices.
Writes results.json, a markdown table and a plot into --out.
"""
import argparse
import json
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import lit_keras  # noqa: E402,F401  (first: pins Keras 2)
from absl import logging  # noqa: E402
import tensorflow as tf  # noqa: E402

_cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(_cpu, [tf.config.LogicalDeviceConfiguration()] * 4)

import tf_keras  # noqa: E402

from configs import common  # noqa: E402
from lit_keras.evaluation import evaluators  # noqa: E402
from lit_keras.training import task as task_lib  # noqa: E402
from lit_keras.training import trainer  # noqa: E402
from lit_keras_app import resolve  # noqa: E402

SETTINGS = ("Lu", "LU", "Uu", "UU", "uu", "UL")
# Each set: retrieval and zero-shot over the 99 subcategories with the emoji prompt ensemble.
SETS = {"heldout": ("emoji", "heldout"), "3d_train": ("emoji_3d", "train"),
        "3d_heldout": ("emoji_3d", "heldout")}


def make_config(setting, seed, args, global_batch_loss=True):
  c = common.base_config()
  c.dataset = "emoji"
  c.setting = setting
  c.seed = seed
  c.image.handle = "ports:efficientnet_lite0/feature_vector"
  c.text.preprocess = "ports:minilm_l6/preprocess"
  c.text.encoder = "ports:minilm_l6/encoder"
  c.text.vocab = "ports:minilm_l6/vocab.txt"
  c.deterministic = False
  c.image.image_size = args.image_size
  c.image.vit = dict(patch_size=16, hidden_size=192, num_layers=4, num_heads=3, mlp_dim=768)
  c.text.bert = dict(hidden_size=256, num_layers=4, num_heads=4, inner_dim=1024)
  c.text.pooling = "mean"
  c.text.seq_length = 16
  c.model.embed_dim = 128
  c.data.augment = False
  c.precompute.enabled = setting[0] == "L"
  c.global_batch_loss = global_batch_loss
  c.optim.lr = 1e-3
  c.optim.weight_decay = 1e-4
  c.optim.warmup_steps = max(1, args.steps // 10)
  c.batch_size = args.batch_size
  c.total_steps = args.steps
  c.log_every = max(1, args.steps // 4)
  c.checkpoint_every = args.steps
  c.eval_every = 0  # evaluated once, after training (run())
  for name, (dataset, split) in SETS.items():
    c.evals[f"{name}_retrieval"] = common.evaluator("retrieval", dataset, split)
    c.evals[f"{name}_zero_shot"] = common.evaluator("zero_shot", dataset, split)
  return c.lock()


def train_and_evaluate(config, strategy, workdir):
  """Trains, then runs every evaluator of the config: (final train metrics, results, training
  seconds). With a locked image tower the evaluators read the sets' pre-computed embeddings (the
  same numbers as running the tower, computed once for all L runs)."""
  tf_keras.backend.clear_session()
  task = task_lib.LiTTask(resolve.resolve(config)).prepare()
  t0 = time.time()
  metrics = trainer.train(task, workdir, strategy)
  train_s = time.time() - t0
  model, _, _ = trainer.restore_model(task.config, workdir,
                                      precomputed=task.config.precompute.enabled)
  return metrics, evaluators.evaluate(task.build_evaluators(during_training=True), model), train_s


def run(config, strategy, workdir):
  metrics, res, train_s = train_and_evaluate(config, strategy, workdir)
  out = {"train_loss": metrics["loss"], "train_seconds": train_s}
  for name in SETS:
    r, z = res[f"{name}_retrieval"], res[f"{name}_zero_shot"]
    out[name] = {"i2t_r@1": r["i2t_r@1"], "t2i_r@1": r["t2i_r@1"], "zero_shot_top1": z["top1"]}
  return out


def summarize(results, out_dir):
  keys = [("heldout", "i2t_r@1"), ("heldout", "zero_shot_top1"), ("3d_train", "i2t_r@1"),
          ("3d_heldout", "i2t_r@1")]
  groups = {}
  for r in results:
    groups.setdefault(r["name"], []).append(r)
  lines = ["| run | seeds | held-out i2t R@1 | held-out zero-shot top-1 | 3D train-concepts i2t "
           "R@1 | 3D held-out i2t R@1 | train s/run |", "|---|---|---|---|---|---|---|"]
  stats = {}
  for name, rs in groups.items():
    cells = []
    for split, metric in keys:
      vals = [r[split][metric] for r in rs]
      m = statistics.mean(vals)
      spread = (max(vals) - min(vals)) / 2
      stats[(name, split, metric)] = (m, spread)
      cells.append(f"{m:.3f} ± {spread:.3f}")
    secs = statistics.mean(r["train_seconds"] for r in rs)
    lines.append(f"| {name} | {len(rs)} | " + " | ".join(cells) + f" | {secs:.0f} |")
  table = "\n".join(lines)
  with open(os.path.join(out_dir, "table.md"), "w") as f:
    f.write(table + "\n\n(mean ± half the range over seeds)\n")
  names = list(groups)
  bar_panels(os.path.join(out_dir, "design_choices.png"), names,
             [(f"{split}: {metric}", [stats[(n, split, metric)] for n in names])
              for split, metric in keys],
             "LiT design choices on emoji (EfficientNet-Lite0 / MiniLM-L6), 3 seeds")
  return table


def bar_panels(path, names, panels, title, width=4.0, rotation=45):
  """One bar chart per (panel title, [(mean, spread) per name]), side by side, saved to `path`."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  fig, axes = plt.subplots(1, len(panels), figsize=(width * len(panels), 3.6), dpi=100)
  for ax, (panel, values) in zip(axes, panels):
    ax.bar(range(len(names)), [m for m, _ in values], yerr=[e for _, e in values],
           color="#4a7ebb", capsize=3)
    ax.set_xticks(range(len(names)), names, rotation=rotation, fontsize=8,
                  ha="right" if rotation > 45 else "center")
    ax.set_title(panel, fontsize=9)
  fig.suptitle(title)
  fig.tight_layout()
  fig.savefig(path)
  plt.close(fig)


def main():
  logging.set_verbosity(logging.INFO)  # the trainer's progress lines
  p = argparse.ArgumentParser()
  p.add_argument("--out", default="docs/design_choices")
  p.add_argument("--seeds", type=int, default=3)
  p.add_argument("--steps", type=int, default=150)
  p.add_argument("--batch_size", type=int, default=128)
  p.add_argument("--image_size", type=int, default=112)
  p.add_argument("--settings", default=",".join(SETTINGS))
  p.add_argument("--skip_loss_comparison", action="store_true")
  args = p.parse_args()
  os.makedirs(args.out, exist_ok=True)
  path = os.path.join(args.out, "results.json")
  results = json.load(open(path)) if os.path.exists(path) else []
  done = {(r["name"], r["seed"]) for r in results}
  jobs = [(s, seed, s, True) for s in args.settings.split(",") for seed in range(args.seeds)]
  if not args.skip_loss_comparison:
    jobs += [(f"Lu {kind} loss, 4 replicas", seed, "Lu", kind == "global")
             for kind in ("global", "per-replica") for seed in range(args.seeds)]
  mirrored = tf.distribute.MirroredStrategy([f"/cpu:{i}" for i in range(4)])
  t_start = time.time()
  for i, (name, seed, setting, global_loss) in enumerate(jobs):
    if (name, seed) in done:
      continue
    strategy = mirrored if "replicas" in name else tf.distribute.get_strategy()
    with tempfile.TemporaryDirectory() as wd:
      r = run(make_config(setting, seed, args, global_loss), strategy, wd)
    r.update(name=name, seed=seed, setting=setting)
    results.append(r)
    with open(path, "w") as f:
      json.dump(results, f, indent=2)
    print(f"[{i + 1}/{len(jobs)}] {name} seed {seed}: held-out i2t R@1 "
          f"{r['heldout']['i2t_r@1']:.3f}, zero-shot {r['heldout']['zero_shot_top1']:.3f} "
          f"({r['train_seconds']:.0f}s train, {time.time() - t_start:.0f}s total)", flush=True)
  print(summarize(results, args.out))


if __name__ == "__main__":
  main()
