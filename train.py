"""Trains a LiT model.

  python train.py --config=configs/demo.py --workdir=workdirs/demo [--config.total_steps=500]
  python train.py --config=configs/NAME.py --workdir=gs://bucket/run --strategy=tpu --tpu=local

Resumes from the latest checkpoint in --workdir; writes the resolved config there. Exit code 42
(`PREEMPTED_EXIT_CODE`) after a SIGTERM: the step finished and a checkpoint was saved.
"""
import os
import sys

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # before TensorFlow is imported
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app  # noqa: E402
from absl import flags  # noqa: E402
from absl import logging  # noqa: E402
from ml_collections import config_flags  # noqa: E402

from lit_keras.training import strategy as strategy_lib  # noqa: E402
from lit_keras.training import tasks  # noqa: E402
from lit_keras.training import trainer  # noqa: E402

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file (configs/NAME.py[:arg]).",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Where checkpoints, summaries and config go.")
_STRATEGY = flags.DEFINE_enum("strategy", "auto", strategy_lib.STRATEGIES,
                              "tf.distribute strategy.")
_TPU = flags.DEFINE_string("tpu", None, "TPU name/address ('local' on a Cloud TPU VM).")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  del argv
  logging.set_verbosity(logging.INFO)
  strategy = strategy_lib.create_strategy(_STRATEGY.value, _TPU.value)
  config = tasks.resolve(_CONFIG.value, _WORKDIR.value)
  tasks.validate_replicas(config, strategy)
  try:
    trainer.train(config, _WORKDIR.value, strategy, tasks.train_dataset_fn(config),
                  eval_fn=tasks.eval_fn(config))
  except trainer.Preempted as e:
    logging.warning("%s", e)
    sys.exit(trainer.PREEMPTED_EXIT_CODE)


if __name__ == "__main__":
  app.run(main)
