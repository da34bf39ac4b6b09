"""Evaluates a trained LiT model: zero-shot classification on the dataset's held-out split.

  python evaluate.py --workdir=workdirs/digits

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
from lit_keras.training import trainer  # noqa: E402

_WORKDIR = flags.DEFINE_string("workdir", None, "The training run's workdir.")
flags.mark_flags_as_required(["workdir"])


def main(argv):
  del argv
  logging.set_verbosity(logging.INFO)
  with open(os.path.join(_WORKDIR.value, "config.json")) as f:
    config = ml_collections.ConfigDict(json.load(f))
  model, step, path = trainer.restore_model(config, _WORKDIR.value)
  if config.dataset != "digits":
    raise ValueError(f"no evaluation for dataset {config.dataset!r} yet")
  images, labels = digits.load("test")
  results = {"checkpoint": path, "step": step, "num_images": len(labels)}
  for name, templates in (("prompt_0", digits.TEMPLATES[:1]), ("ensemble", digits.TEMPLATES)):
    class_emb = evaluation.class_embeddings(model, digits.CLASS_NAMES, templates)
    metrics, _ = evaluation.zero_shot_accuracy(model, images, labels, class_emb)
    results[f"zero_shot/{name}"] = metrics
  with open(os.path.join(_WORKDIR.value, "eval_metrics.json"), "w") as f:
    json.dump(results, f, indent=2)
  print(f"\nZero-shot classification, digits test split ({len(labels)} images, chance 0.100), "
        f"checkpoint step {step}:")
  print(f"{'prompts':<12}{'top-1':>8}{'top-5':>8}")
  for name in ("prompt_0", "ensemble"):
    m = results[f"zero_shot/{name}"]
    print(f"{name:<12}{m['top1']:>8.3f}{m['top5']:>8.3f}")


if __name__ == "__main__":
  app.run(main)
