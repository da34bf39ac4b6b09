"""Evaluates a LiT model: zero-shot classification and image↔text retrieval (the body of
evaluate.py).

  python evaluate.py --workdir=workdirs/demo                      # the config's evaluators
  python evaluate.py --workdir=W --data="val-*.tfrecord" --classes=imagenet1k --templates=clip
  python evaluate.py --saved_model=exports/demo --image_size=224 --data=... --classes=FILE
  python evaluate.py --workdir=W --data=tfds:cifar100:test --fewshot_train=tfds:cifar100:train

With --workdir, the evaluators are those the run's config declares (`config.evals`), the same
that ran during training. With --data, one set of your own (a TFRecord glob, or a TFDS source
`tfds:NAME[/CONFIG]:SPLIT[@DATA_DIR]`): retrieval, zero-shot if --classes is given (a labelled
TFDS set brings its own class names), and a few-shot probe with --fewshot_train. Writes to
--output_dir (default: the workdir, or ./eval): eval_metrics.json, a
confusion-matrix PNG per zero-shot evaluator and a retrieval gallery (HTML) per retrieval
evaluator, and prints the results.
"""
import json
import os

from absl import app
from absl import flags
from absl import logging
import numpy as np
import tensorflow as tf
import tensorflow_text  # noqa: F401  (the ops of an exported text tokenizer)

from lit_keras.data import tfds_source
from lit_keras.evaluation import evaluators
from lit_keras.evaluation import prompts
from lit_keras.training import strategy as strategy_lib
from lit_keras.training import task as task_lib
from lit_keras.training import trainer
from lit_keras_app import cli
from lit_keras_app import console
from lit_keras_app import datasets  # noqa: F401  (registers the datasets' class lists, templates)

_WORKDIR = flags.DEFINE_string("workdir", None, "A training run's workdir (latest checkpoint).")
_SAVED_MODEL = flags.DEFINE_string("saved_model", None, "Or: an exported serving SavedModel.")
_DATA = flags.DEFINE_string(
    "data", None, "One set to evaluate instead: a TFRecord glob or tfds:NAME[/CONFIG]:SPLIT"
    "[@DATA_DIR].")
_FEWSHOT_TRAIN = flags.DEFINE_string(
    "fewshot_train", None, "With --data: a labelled set (glob or tfds:) to draw few-shot probe "
    "examples from (1/5/10/25 per class, 3 seeds); --data is the probe's test set.")
_CLASSES = flags.DEFINE_string(
    "classes", None, "With --data: class list for zero-shot (imagenet1k, a registered dataset "
    "such as emoji or digits, or a file, one class per line).")
_TEMPLATES = flags.DEFINE_string(
    "templates", None, "Prompt templates for zero-shot (clip, clip-short, plain, a registered "
    "dataset's, or a file); default: the evaluators' own (with --data: the classes' if "
    "registered, else plain).")
_IMAGE_SIZE = flags.DEFINE_integer("image_size", None, "Input size (with --saved_model).")
_OUTPUT_DIR = flags.DEFINE_string("output_dir", None, "Where results go.")
_BATCH = flags.DEFINE_integer(
    "batch_size", 64, "Evaluation batch size (per replica). 64 keeps the demo's evaluation at "
    "2.7 GB peak RSS (256: 5.9 GB, and no faster; benchmarks/rss_over_time.py).")
_STRATEGY = flags.DEFINE_enum("strategy", "auto", strategy_lib.STRATEGIES,
                              "The replicas share the evaluation (each example embedded once).")
_TPU = flags.DEFINE_string("tpu", None, "TPU name/address ('local' on a Cloud TPU VM).")
_CPU_DEVICES = flags.DEFINE_integer("cpu_devices", 0, "Split the CPU into this many devices.")


class SavedModelEncoder:
  """Gives an exported serving SavedModel the `encode_image` / `encode_text` interface."""

  def __init__(self, path):
    self._m = tf.saved_model.load(path)

  def encode_image(self, images, training=False):
    del training
    images = tf.convert_to_tensor(images, tf.float32)
    return self._m.signatures["embed_image_float"](images=images)["embeddings"]

  def encode_text(self, texts, training=False):
    del training
    return self._m.signatures["embed_text"](texts=tf.convert_to_tensor(texts))["embeddings"]


def _ad_hoc_specs(data, classes, templates, fewshot_train=None):
  """One set of your own: retrieval, plus zero-shot with `classes` (a labelled TFDS set: its
  own), plus a few-shot probe with `fewshot_train`."""
  specs = {"retrieval": {"type": "retrieval", "data": data}}
  if tfds_source.is_tfds(data) and not tfds_source.layout(data)["texts"]:
    specs = {}  # a classification set: its only captions would be its class names
  if not classes and tfds_source.is_tfds(data) and tfds_source.class_names(data):
    specs["zero_shot"] = {"type": "zero_shot", "data": data, "templates": templates or "plain"}
  if fewshot_train:
    specs["fewshot"] = {"type": "fewshot", "data": data, "train_data": fewshot_train}
  if classes:
    if not templates:
      templates = classes if classes in prompts.template_names() else "plain"
    specs["zero_shot"] = {"type": "zero_shot", "data": data, "classes": classes,
                          "templates": templates}
  return specs


def _with_templates(specs, templates):
  return {name: dict(spec, templates=templates) if spec["type"] == "zero_shot" else spec
          for name, spec in specs.items()}


def format_results(results):
  """The printed table: one line per evaluator, its headline metrics."""
  lines = [f"{'evaluator':<24}{'images':>7}  metrics"]
  for name, r in results.items():
    if "i2t_r@1" in r:
      text = (f"i2t R@1 {r['i2t_r@1']:.3f}  t2i R@1 {r['t2i_r@1']:.3f}  "
              f"i2t R@5 {r['i2t_r@5']:.3f}  t2i R@5 {r['t2i_r@5']:.3f}  "
              f"({r['captions']} captions)")
    elif "top1" in r:
      text = (f"zero-shot top-1 {r['top1']:.3f}  top-5 {r['top5']:.3f}  per-class "
              f"{r['mean_per_class']:.3f}  majority class {r['majority_baseline']:.3f}  "
              f"({r['classes']} classes × {r['templates']} templates)")
    elif "train_images" in r:
      parts = []
      for rep in ("embedding", "features"):
        shots = [(k[len(rep) + 1:-4], v) for k, v in r.items()
                 if k.startswith(rep + "_") and k.endswith("shot")]
        if shots:
          parts.append(f"{rep} " + " ".join(f"{n}-shot {v:.3f}" for n, v in shots))
      text = (f"few-shot {'  '.join(parts)}  ({r['seeds']} seeds, {r['train_images']} "
              "train images)")
    else:
      text = ", ".join(f"{k} {v:.3f}" for k, v in r.items() if isinstance(v, float))
    lines.append(f"{name:<24}{r.get('images', 0):>7}  {text}")
  return "\n".join(lines)


def main(argv):
  del argv
  console.setup(cli.VERBOSE.value)
  with console.setup_errors():
    _evaluate()


def _evaluate():
  """The program's body (flags parsed, logging set up)."""
  if bool(_WORKDIR.value) == bool(_SAVED_MODEL.value):
    raise app.UsageError("give exactly one of --workdir and --saved_model")
  strategy = None
  if _WORKDIR.value:
    strategy = strategy_lib.create_strategy(_STRATEGY.value, _TPU.value, _CPU_DEVICES.value)
    config = task_lib.load_config(_WORKDIR.value)
    model, step, _ = trainer.restore_model(config, _WORKDIR.value, strategy=strategy)
    source, image_size = _WORKDIR.value, config.image.image_size
    crop_fraction = config.data.get("crop_fraction", 1.0)
    specs = task_lib.LiTTask(config).eval_specs()
    out_dir = _OUTPUT_DIR.value or _WORKDIR.value
  else:
    if not (_DATA.value and _IMAGE_SIZE.value):
      raise app.UsageError("--saved_model needs --data and --image_size")
    model, step, source = SavedModelEncoder(_SAVED_MODEL.value), None, _SAVED_MODEL.value
    image_size, crop_fraction, specs = _IMAGE_SIZE.value, 1.0, {}
    out_dir = _OUTPUT_DIR.value or "eval"
  if _DATA.value:
    specs = _ad_hoc_specs(_DATA.value, _CLASSES.value, _TEMPLATES.value, _FEWSHOT_TRAIN.value)
  elif _TEMPLATES.value:
    specs = _with_templates(specs, _TEMPLATES.value)
  for spec in specs.values():
    spec["batch_size"] = _BATCH.value
    if spec["type"] == "fewshot" and isinstance(model, SavedModelEncoder):
      spec["representations"] = ["embedding"]  # an export serves embeddings, not features
  tf.io.gfile.makedirs(out_dir)
  evals = evaluators.build(specs, image_size, crop_fraction)
  if not evals:
    raise app.UsageError("nothing to evaluate: the config declares no evaluator with data; "
                         "pass --data")
  results = evaluators.evaluate(evals, model, out_dir=out_dir, progress=True, log=logging.info,
                                strategy=strategy)
  with tf.io.gfile.GFile(os.path.join(out_dir, "eval_metrics.json"), "w") as f:
    json.dump({"model": source, "step": step, "evals": results}, f, indent=2,
              default=lambda x: x.item() if isinstance(x, np.generic) else str(x))
  print(f"\nResults ({source}{'' if step is None else f', step {step}'}):")
  print(format_results(results))
  print(f"metrics, confusion matrices and galleries in {out_dir}")
