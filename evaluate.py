"""Evaluates a trained LiT model: zero-shot classification and image↔text retrieval.

  python evaluate.py --workdir=workdirs/demo

Writes <workdir>/eval_metrics.json and prints a results table.
"""
import json
import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # before TensorFlow is imported
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app  # noqa: E402
from absl import flags  # noqa: E402
from absl import logging  # noqa: E402
import ml_collections  # noqa: E402

from lit_keras import evaluation  # noqa: E402
from lit_keras.datasets import digits  # noqa: E402
from lit_keras.training import tasks  # noqa: E402
from lit_keras.training import trainer  # noqa: E402

_WORKDIR = flags.DEFINE_string("workdir", None, "The training run's workdir.")
flags.mark_flags_as_required(["workdir"])


def main(argv):
  del argv
  logging.set_verbosity(logging.INFO)
  with open(os.path.join(_WORKDIR.value, "config.json")) as f:
    config = ml_collections.ConfigDict(json.load(f))
  model, step, path = trainer.restore_model(config, _WORKDIR.value)
  img, txt, owner, labels, _ = tasks.embed_eval_set(model, config.data.eval,
                                                    config.image.image_size)
  results = {"checkpoint": path, "step": step, "num_images": len(labels),
             "retrieval": evaluation.recall_at_k(img, txt, owner)}
  if config.dataset == "digits":
    for name, templates in (("prompt_0", digits.TEMPLATES[:1]), ("ensemble", digits.TEMPLATES)):
      cls = evaluation.class_embeddings(model, digits.CLASS_NAMES, templates)
      results[f"zero_shot/{name}"] = evaluation.zero_shot_accuracy(model, None, labels, cls,
                                                                   image_emb=img)[0]
  with open(os.path.join(_WORKDIR.value, "eval_metrics.json"), "w") as f:
    json.dump(results, f, indent=2)
  print(f"\n{config.dataset} eval split ({len(labels)} images), checkpoint step {step}")
  r = results["retrieval"]
  print(f"retrieval  i2t R@1/5/10 {r['i2t_r@1']:.3f}/{r['i2t_r@5']:.3f}/{r['i2t_r@10']:.3f}"
        f"   t2i R@1/5/10 {r['t2i_r@1']:.3f}/{r['t2i_r@5']:.3f}/{r['t2i_r@10']:.3f}")
  for k, v in results.items():
    if k.startswith("zero_shot/"):
      print(f"{k:<22} top-1 {v['top1']:.3f}  top-5 {v['top5']:.3f}")


if __name__ == "__main__":
  app.run(main)
