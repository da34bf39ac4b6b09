"""Trains a LiT model (the body of train.py).

  python train.py --config=configs/demo.py --workdir=workdirs/demo [--config.total_steps=500]
  python train.py --config=configs/NAME.py --workdir=gs://bucket/run --strategy=tpu --tpu=local

Resolves the config's dataset and handles (building them into the cache on first use), runs the
pre-computation of locked image embeddings if asked for, and trains, resuming from the latest
checkpoint in --workdir; writes the resolved config there. Exit code 42
(`trainer.PREEMPTED_EXIT_CODE`) after a SIGTERM: the step finished and a checkpoint was saved.
"""
import sys

from absl import flags
from absl import logging
from ml_collections import config_flags

from lit_keras.training import keras_fit
from lit_keras.training import strategy as strategy_lib
from lit_keras.training import task as task_lib
from lit_keras.training import trainer
from lit_keras_app import cli
from lit_keras_app import console
from lit_keras_app import resolve

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file (configs/NAME.py[:arg]).",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Where checkpoints, summaries and config go.")
_STRATEGY = flags.DEFINE_enum("strategy", "auto", strategy_lib.STRATEGIES,
                              "tf.distribute strategy.")
_TPU = flags.DEFINE_string("tpu", None, "TPU name/address ('local' on a Cloud TPU VM).")
_CPU_DEVICES = flags.DEFINE_integer(
    "cpu_devices", 0, "Split the host CPU into this many logical devices, to simulate a "
    "multi-replica host (with --strategy=mirrored, or multi-worker for a pod of such hosts).")
_ENGINE = flags.DEFINE_enum(
    "engine", "orbit", ["orbit", "fit"], "orbit: lit_keras' runner (Orbit); fit: Keras "
    "model.fit() with BackupAndRestore and TensorBoard — the same step and data.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  del argv
  console.setup(cli.VERBOSE.value)
  with console.setup_errors():
    strategy = strategy_lib.create_strategy(_STRATEGY.value, _TPU.value, _CPU_DEVICES.value)
    task = task_lib.LiTTask(resolve.resolve(_CONFIG.value)).prepare(strategy)
    if _ENGINE.value == "fit":
      keras_fit.fit(task, _WORKDIR.value, strategy)
      return
    try:
      trainer.train(task, _WORKDIR.value, strategy)
    except trainer.Preempted as e:
      logging.warning("%s", e)
      sys.exit(trainer.PREEMPTED_EXIT_CODE)
