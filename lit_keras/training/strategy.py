"""The one place a tf.distribute strategy is created (called by train.py / evaluate.py)."""
from absl import logging
import tensorflow as tf

STRATEGIES = ("auto", "one-device", "mirrored", "multi-worker", "tpu")


def create_strategy(name="auto", tpu=None):
  """Creates a strategy by name.

  Args:
    name: "auto" (TPU if `tpu` is given, else MirroredStrategy over >1 GPUs, else one device),
      "one-device", "mirrored" (all local GPUs, or all logical CPUs), "multi-worker"
      (MultiWorkerMirroredStrategy from `TF_CONFIG`), or "tpu".
    tpu: TPU name or address for `TPUClusterResolver` ("local" on a Cloud TPU VM).
  """
  if name not in STRATEGIES:
    raise ValueError(f"Unknown strategy {name!r}; expected one of {STRATEGIES}")
  if name == "auto":
    gpus = tf.config.list_logical_devices("GPU")
    name = "tpu" if tpu else ("mirrored" if len(gpus) > 1 else "one-device")
  if name == "tpu":
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu or "")
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    strategy = tf.distribute.TPUStrategy(resolver)
  elif name == "multi-worker":
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
  elif name == "mirrored":
    devices = [d.name for d in tf.config.list_logical_devices("GPU")] or [
        d.name for d in tf.config.list_logical_devices("CPU")]
    strategy = tf.distribute.MirroredStrategy(devices)
  else:
    gpus = tf.config.list_logical_devices("GPU")
    strategy = tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")
  logging.info("strategy %s with %d replicas", type(strategy).__name__,
               strategy.num_replicas_in_sync)
  return strategy
