"""Multilingual LiT: one locked image tower, one text tower for 13 languages (10 scripts).

    .venv/bin/python benchmarks/multilingual.py --out docs/multilingual      # ≈ 15 min, 2 cores

Trains two Lu models with identical architecture, SentencePiece vocabulary (trained on all the
multilingual captions), steps and batch, from pre-computed EfficientNet-Lite0 embeddings of the
Google-style emoji (training concepts): `multilingual` on CLDR captions in 13 languages, and
`english-only` on the English CLDR captions. Then, per language, on the held-out concepts:
image→text and text→image R@1 over that language's captions, and zero-shot classification of
each held-out image among the 382 held-out concept names in that language. Writes results.json,
table.md and multilingual.png into --out.
"""
import argparse
import json
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import lit_keras  # noqa: E402,F401  (first: pins Keras 2)
from absl import logging  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from configs import common  # noqa: E402
from lit_keras import cache  # noqa: E402
from lit_keras import evaluation  # noqa: E402
from lit_keras.data import pipeline  # noqa: E402
from lit_keras.training import task as task_lib  # noqa: E402
from lit_keras.training import trainer  # noqa: E402
from lit_keras_app import datasets  # noqa: E402
from lit_keras_app import resolve  # noqa: E402
from lit_keras_app.datasets import emoji_multilingual as em  # noqa: E402


def make_config(train_split, sp_model, args):
  c = common.base_config()
  c.dataset = "emoji_multilingual"
  c.setting = "Lu"
  c.data.train_split = train_split
  c.image.handle = "ports:efficientnet_lite0/feature_vector"
  c.image.image_size = 224
  c.text.sentencepiece_model = sp_model
  c.text.seq_length = 24
  c.text.bert = dict(hidden_size=256, num_layers=4, num_heads=4, inner_dim=1024)
  c.model.embed_dim = 128
  c.precompute.enabled = True
  c.optim.warmup_steps = args.steps // 10
  c.batch_size = args.batch_size
  c.total_steps = args.steps
  c.log_every = max(1, args.steps // 6)
  c.checkpoint_every = args.steps
  # Not run during training (eval_every = 0); declared so that `prepare` pre-computes the held-out
  # images' embeddings, which main() evaluates per language.
  c.evals.heldout = common.evaluator("retrieval", "emoji_multilingual", "heldout")
  return c.lock()


def per_language(model, image_emb, heldout):
  ids = heldout["ids"]
  out = {}
  for lang, caps in heldout["captions"].items():
    images = [i for i, u in enumerate(ids) if u in caps]
    texts, owner = [], []
    for j, i in enumerate(images):
      for t in caps[ids[i]]:
        texts.append(t)
        owner.append(j)
    emb = np.concatenate([model.encode_text(tf.constant(texts[s:s + 256])).numpy()
                          for s in range(0, len(texts), 256)])
    r = evaluation.recall_at_k(image_emb[images], emb, np.array(owner), ks=(1, 5))
    names = [caps[ids[i]][0] for i in images]
    cls = evaluation.class_embeddings(model, names, ["{}"])
    zs, _ = evaluation.zero_shot_accuracy(None, None, np.arange(len(images)), cls,
                                          image_emb=image_emb[images])
    out[lang] = {"i2t_r@1": r["i2t_r@1"], "t2i_r@1": r["t2i_r@1"], "zero_shot_top1": zs["top1"],
                 "concepts": len(images), "captions": len(texts)}
  return out


def main():
  logging.set_verbosity(logging.INFO)  # the trainer's progress lines
  p = argparse.ArgumentParser()
  p.add_argument("--out", default="docs/multilingual")
  p.add_argument("--steps", type=int, default=300)
  p.add_argument("--batch_size", type=int, default=256)
  p.add_argument("--vocab_size", type=int, default=8000)
  args = p.parse_args()
  os.makedirs(args.out, exist_ok=True)
  dataset = datasets.get("emoji_multilingual")
  data = dataset.ensure_built(dataset.default_dir(), cache.root())
  train_texts = [t.decode() for b in pipeline.eval_dataset(
      os.path.join(data, "multi-train-*.tfrecord"), 512, 8)
      for row, k in zip(b["texts"].numpy(), b["num_texts"].numpy()) for t in row[:k]]
  sp_model = em.train_sentencepiece(train_texts, os.path.join(data, "sp_multilingual"),
                                    args.vocab_size)
  with open(os.path.join(data, "heldout.json"), encoding="utf-8") as f:
    heldout = json.load(f)
  results = {"languages": list(heldout["captions"]), "models": {}}
  for name, split in (("multilingual", "multi-train"), ("english-only", "en-train")):
    config = make_config(split, sp_model, args)
    task = task_lib.LiTTask(resolve.resolve(config)).prepare()
    with tempfile.TemporaryDirectory() as wd:
      trainer.train(task, wd, tf.distribute.get_strategy())
      model, _, _ = trainer.restore_model(task.config, wd, precomputed=True)
    e = evaluation.embed_eval_set(model, task.config.evals.heldout.precomputed, 224,
                                  embedding_dim=task.config.precompute.dim)
    order = np.argsort(e["labels"])  # label = index in heldout.json's ids
    results["models"][name] = per_language(model, e["image_emb"][order], heldout)
    print(name, json.dumps(results["models"][name]), flush=True)
  with open(os.path.join(args.out, "results.json"), "w") as f:
    json.dump(results, f, indent=2)
  langs = list(heldout["captions"])
  lines = ["| language | multilingual i2t R@1 | english-only i2t R@1 | multilingual t2i R@1 | "
           "english-only t2i R@1 | multilingual zero-shot | english-only zero-shot |",
           "|---|---|---|---|---|---|---|"]
  for lang in langs:
    m, en = results["models"]["multilingual"][lang], results["models"]["english-only"][lang]
    lines.append(f"| {lang} | {m['i2t_r@1']:.3f} | {en['i2t_r@1']:.3f} | {m['t2i_r@1']:.3f} | "
                 f"{en['t2i_r@1']:.3f} | {m['zero_shot_top1']:.3f} | "
                 f"{en['zero_shot_top1']:.3f} |")
  with open(os.path.join(args.out, "table.md"), "w") as f:
    f.write("\n".join(lines) + "\n")
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  x = np.arange(len(langs))
  fig, ax = plt.subplots(figsize=(10, 3.6), dpi=100)
  for k, (name, color) in enumerate((("multilingual", "#4a7ebb"), ("english-only", "#bbb"))):
    ax.bar(x + (k - 0.5) * 0.4, [results["models"][name][l]["zero_shot_top1"] for l in langs],
           0.4, label=name, color=color)
  ax.set_xticks(x, langs)
  ax.set_ylabel("zero-shot top-1 (382 held-out concepts)")
  ax.set_title("One locked EfficientNet-Lite0, one text tower: held-out emoji per language")
  ax.legend()
  fig.tight_layout()
  fig.savefig(os.path.join(args.out, "multilingual.png"))
  print("\n".join(lines))


if __name__ == "__main__":
  main()
