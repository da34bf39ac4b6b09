"""Evaluates a LiT model: zero-shot classification and image↔text retrieval.

  python evaluate.py --workdir=workdirs/demo                      # the config's built-in sets
  python evaluate.py --workdir=W --data="val-*.tfrecord" --classes=imagenet1k --templates=clip
  python evaluate.py --saved_model=exports/demo --image_size=224 --data=... --classes=FILE

Writes to --output_dir (default: the workdir, or ./eval): eval_metrics.json, a confusion-matrix
PNG and a retrieval gallery (HTML) per evaluated set, and prints a results table.
"""
import json
import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # before TensorFlow is imported
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app  # noqa: E402
from absl import flags  # noqa: E402
from absl import logging  # noqa: E402
import ml_collections  # noqa: E402
import numpy as np  # noqa: E402

from lit_keras import assets  # noqa: E402
from lit_keras import evaluation  # noqa: E402
from lit_keras.datasets import digits  # noqa: E402
from lit_keras.evaluation import report  # noqa: E402
from lit_keras.training import tasks  # noqa: E402

_WORKDIR = flags.DEFINE_string("workdir", None, "A training run's workdir (latest checkpoint).")
_SAVED_MODEL = flags.DEFINE_string("saved_model", None, "Or: an exported serving SavedModel.")
_DATA = flags.DEFINE_string("data", None, "TFRecords to evaluate (default: the config's sets).")
_CLASSES = flags.DEFINE_string("classes", None,
                               "imagenet1k | emoji-subcategories | digits | a file, one per line")
_TEMPLATES = flags.DEFINE_string("templates", "default", "default | clip | clip-short | a file")
_IMAGE_SIZE = flags.DEFINE_integer("image_size", None, "Input size (with --saved_model).")
_OUTPUT_DIR = flags.DEFINE_string("output_dir", None, "Where results go.")
_BATCH = flags.DEFINE_integer("batch_size", 256, "Evaluation batch size.")

EMOJI_TEMPLATES = ["{}", "an emoji of {}.", "a picture of {}."]


class SavedModelEncoder:
  """Gives an exported serving SavedModel the `encode_image` / `encode_text` interface."""

  def __init__(self, path):
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    import tensorflow_text  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import
    self._m = tf.saved_model.load(path)
    self._tf = tf

  def encode_image(self, images, training=False):
    del training
    return self._m.signatures["embed_image_float"](images=self._tf.convert_to_tensor(
        images, self._tf.float32))["embeddings"]

  def encode_text(self, texts, training=False):
    del training
    return self._m.signatures["embed_text"](texts=self._tf.convert_to_tensor(texts))[
        "embeddings"]


def _templates(spec):
  if spec == "clip":
    return assets.clip_templates()
  if spec == "clip-short":
    return assets.clip_templates_short()
  if spec == "default":
    return None
  with open(spec, encoding="utf-8") as f:
    return [line.strip() for line in f if line.strip()]


def _classes(spec, data_glob):
  if spec is None:
    return None
  if spec == "imagenet1k":
    return assets.imagenet1k_classes()
  if spec == "digits":
    return list(digits.CLASS_NAMES)
  if spec == "emoji-subcategories":
    from lit_keras.datasets import emoji  # pylint: disable=g-import-not-at-top
    return emoji.subcategories(os.path.dirname(data_glob))
  with open(spec, encoding="utf-8") as f:
    return [line.strip() for line in f if line.strip()]


def _eval_sets(config):
  """(name, glob, classes spec, templates) of the config's built-in evaluation sets."""
  if config.dataset == "digits":
    return [("digits test", config.data.eval, "digits", list(digits.TEMPLATES))]
  if config.dataset == "emoji":
    d = os.path.dirname(config.data.eval)
    return [("held-out concepts", config.data.eval, "emoji-subcategories", EMOJI_TEMPLATES),
            ("3D style, train concepts", os.path.join(d, "3d-train-*.tfrecord"),
             "emoji-subcategories", EMOJI_TEMPLATES),
            ("3D style, held-out concepts", os.path.join(d, "3d-heldout-*.tfrecord"),
             "emoji-subcategories", EMOJI_TEMPLATES)]
  return [("eval", config.data.eval, None, None)] if config.data.eval else []


def evaluate_set(model, name, data, image_size, classes, templates, out_dir, batch_size=256):
  """Retrieval and (if classes) zero-shot on one set; writes its PNG and HTML."""
  slug = "".join(c if c.isalnum() else "_" for c in name.lower()).strip("_")
  e = tasks.embed_eval_set(model, data, image_size, batch_size, thumbnail_size=32,
                           progress=True)
  img, txt, owner, labels = e["image_emb"], e["text_emb"], e["owner"], e["labels"]
  result = {"images": int(len(img)), "captions": int(len(txt)),
            "retrieval": evaluation.recall_at_k(img, txt, owner)}
  if classes:
    for tname, tlist in (("single prompt", ["{}"]), ("prompt ensemble", templates or ["{}"])):
      cls = evaluation.class_embeddings(model, classes, tlist)
      metrics, preds = evaluation.zero_shot_accuracy(model, None, labels, cls, image_emb=img)
      cm = report.confusion_matrix(labels, preds, len(classes))
      metrics["mean_per_class"] = float(np.nanmean(report.per_class_accuracy(cm)))
      metrics["majority_baseline"] = float(np.bincount(labels).max() / len(labels))
      result[f"zero_shot/{tname}"] = metrics
    png = os.path.join(out_dir, f"confusion_{slug}.png")
    report.plot_confusion(cm, classes, png, f"{name}: zero-shot (prompt ensemble)")
    result["confusion_png"] = png
  # A gallery: the first caption of 8 evenly spaced images as text queries, and those images.
  first = np.searchsorted(owner, np.arange(len(img)))  # owner is sorted: first caption index
  picks = np.linspace(0, len(img) - 1, 8).astype(int)
  html_path = os.path.join(out_dir, f"gallery_{slug}.html")
  report.retrieval_gallery(html_path, f"{name}: retrieval", e["texts"], e["thumbs"], img, txt,
                           [e["texts"][j] for j in first], [(int(first[i]), int(i))
                                                            for i in picks])
  result["gallery_html"] = html_path
  return result


def main(argv):
  del argv
  logging.set_verbosity(logging.INFO)
  if bool(_WORKDIR.value) == bool(_SAVED_MODEL.value):
    raise app.UsageError("give exactly one of --workdir and --saved_model")
  if _WORKDIR.value:
    from lit_keras.training import trainer  # pylint: disable=g-import-not-at-top
    with open(os.path.join(_WORKDIR.value, "config.json")) as f:
      config = ml_collections.ConfigDict(json.load(f))
    model, step, source = trainer.restore_model(config, _WORKDIR.value)
    image_size = config.image.image_size
    sets = _eval_sets(config)
    out_dir = _OUTPUT_DIR.value or _WORKDIR.value
  else:
    if not (_DATA.value and _IMAGE_SIZE.value):
      raise app.UsageError("--saved_model needs --data and --image_size")
    model, step, source = SavedModelEncoder(_SAVED_MODEL.value), None, _SAVED_MODEL.value
    image_size, sets, out_dir = _IMAGE_SIZE.value, [], _OUTPUT_DIR.value or "eval"
  if _DATA.value:
    sets = [("eval", _DATA.value, _CLASSES.value, _templates(_TEMPLATES.value))]
  elif _TEMPLATES.value != "default":
    sets = [(n, d, c, _templates(_TEMPLATES.value)) for n, d, c, _ in sets]
  os.makedirs(out_dir, exist_ok=True)
  results = {"model": source, "step": step, "sets": {}}
  for name, data, classes, templates in sets:
    logging.info("evaluating %s (%s)", name, data)
    results["sets"][name] = evaluate_set(model, name, data, image_size,
                                         _classes(classes, data), templates, out_dir,
                                         _BATCH.value)
  with open(os.path.join(out_dir, "eval_metrics.json"), "w") as f:
    json.dump(results, f, indent=2)
  print(f"\nResults ({source}{'' if step is None else f', step {step}'}):")
  print(f"{'set':<30}{'images':>7}{'i2t R@1':>9}{'t2i R@1':>9}{'i2t R@5':>9}"
        f"{'zs top-1':>10}{'zs top-5':>10}{'majority':>10}")
  for name, r in results["sets"].items():
    zs = r.get("zero_shot/prompt ensemble", {})
    print(f"{name:<30}{r['images']:>7}{r['retrieval']['i2t_r@1']:>9.3f}"
          f"{r['retrieval']['t2i_r@1']:>9.3f}{r['retrieval']['i2t_r@5']:>9.3f}"
          f"{zs.get('top1', float('nan')):>10.3f}{zs.get('top5', float('nan')):>10.3f}"
          f"{zs.get('majority_baseline', float('nan')):>10.3f}")
  print(f"metrics, confusion matrices and galleries in {out_dir}")


if __name__ == "__main__":
  app.run(main)
