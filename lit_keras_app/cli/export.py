"""Exports a trained run (`lit-keras-export`): a serving SavedModel, and/or its towers in the
TF-Hub interfaces.

    lit-keras-export --workdir workdirs/demo --output exports/demo [--classes emoji] \
        [--templates clip] [--hub_towers exports/demo_towers]

Serving signatures: `embed_image` (encoded bytes), `embed_image_tensor` (uint8),
`embed_image_float`, `embed_text` (strings) and, with --classes, `zero_shot`
(`lit_keras.export.serving`); the export loads with only `tensorflow` and `tensorflow_text`
imported. --hub_towers writes `image/` (a TF2 image feature vector, images in [0, 1]) and
`text/preprocess` + `text/encoder` (a TF-Hub BERT pair), loadable by `HubImageTower` /
`HubBertTextTower` or any TF-Hub code (`lit_keras.export.tfhub_format`).
"""
import argparse
import os
import sys

from lit_keras.evaluation import prompts
from lit_keras.export import serving
from lit_keras.export import tfhub_format
from lit_keras.training import task as task_lib
from lit_keras.training import trainer
from lit_keras_app import datasets  # noqa: F401  (registers the datasets' class lists, templates)


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--workdir", required=True)
  p.add_argument("--output", default=None, help="the serving SavedModel's directory")
  p.add_argument("--hub_towers", default=None,
                 help="also write both towers in the TF-Hub interfaces here")
  p.add_argument("--classes", default=None,
                 help="class list for the zero_shot signature: imagenet1k, a registered "
                      "dataset (e.g. emoji, digits) or a file, one class per line")
  p.add_argument("--templates", default=None,
                 help="prompt templates (clip, clip-short, plain, a dataset's, or a file); "
                      "default: the classes' dataset's if registered, else plain")
  a = p.parse_args(argv)
  if not (a.output or a.hub_towers):
    p.error("give --output and/or --hub_towers")
  config = task_lib.load_config(a.workdir)
  model, step, _ = trainer.restore_model(config, a.workdir)
  classes, templates = None, ["{}"]
  if a.classes:
    data_dir = (config.data.get("dir") or None) if a.classes == config.get("dataset") else None
    classes = prompts.class_names(a.classes, data_dir)
    templates = prompts.templates(
        a.templates or (a.classes if a.classes in prompts.template_names() else "plain"))
  if a.output:
    serving.export(model, a.output, config.image.image_size, classes, templates,
                   config.data.get("crop_fraction", 1.0))
    print(f"exported step {step} to {a.output}")
  if a.hub_towers:
    image = tfhub_format.export_image_tower(model.image_tower,
                                            os.path.join(a.hub_towers, "image"))
    pre, enc = tfhub_format.export_text_tower(model.text_tower,
                                              os.path.join(a.hub_towers, "text"))
    print(f"exported the towers of step {step}: {image}, {pre} + {enc}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
