"""The one place a tf.distribute strategy is created (called by the programs).

`cpu_devices=N` splits this host's CPU into N logical devices, so that anyone can run the layouts
of accelerator hosts on a laptop: `--strategy=mirrored --cpu_devices=4` is a 4-replica host;
`--strategy=multi-worker --cpu_devices=2` in two processes (TF_CONFIG) is a 2-host × 2-replica
pod. MultiWorkerMirroredStrategy takes one CPU device per worker and has no argument for more;
for that case alone this module names the local devices through its extended object (a private
TensorFlow API, used nowhere else; `tests/lit_keras_app/cli/test_train.py` runs it).
"""
import json
import os

from absl import logging
import tensorflow as tf
from tensorflow.python.distribute import collective_all_reduce_strategy  # pylint: disable=g-direct-tensorflow-import

from lit_keras import errors

STRATEGIES = ("auto", "one-device", "mirrored", "multi-worker", "tpu")


def split_cpu(num_devices):
  """Splits the host CPU into `num_devices` logical devices; call before TensorFlow runs ops."""
  cpu = tf.config.list_physical_devices("CPU")[0]
  current = tf.config.get_logical_device_configuration(cpu)
  if current and len(current) == num_devices:
    return
  try:
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * num_devices)
  except RuntimeError as e:
    raise RuntimeError(f"cannot split the CPU into {num_devices} devices: TensorFlow is already "
                       f"initialised ({e}); split it at program start") from e


class _LocalCpusExtended(collective_all_reduce_strategy.CollectiveAllReduceExtended):
  """MultiWorkerMirroredStrategy's machinery with this worker's logical CPUs as its devices."""

  num_cpus = 1

  def _initialize_local_devices(self, cluster_resolver, worker_device):
    del cluster_resolver
    return tuple(f"{worker_device}/device:CPU:{i}" for i in range(self.num_cpus)), "CPU"


class _MultiWorkerOnCpus(tf.distribute.MultiWorkerMirroredStrategy):

  def __init__(self, num_cpus):  # pylint: disable=super-init-not-called
    extended = type("Extended", (_LocalCpusExtended,), {"num_cpus": num_cpus})
    tf.distribute.Strategy.__init__(self, extended(  # pylint: disable=non-parent-init-called
        self, cluster_resolver=tf.distribute.cluster_resolver.TFConfigClusterResolver(),
        communication_options=tf.distribute.experimental.CommunicationOptions()))


def _has_cluster():
  try:
    return len(json.loads(os.environ.get("TF_CONFIG", "{}")).get("cluster", {})
               .get("worker", [])) > 1
  except ValueError:
    return False


def _tpu_strategy(tpu):
  try:
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu or "")
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
  except (ValueError, RuntimeError, tf.errors.OpError) as e:
    reason = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
    raise errors.StrategyUnavailableError(
        f"--strategy=tpu --tpu={tpu}: no TPU is reachable from this machine ({reason}). Run on "
        "a Cloud TPU VM (--tpu=local) or name a reachable TPU; here, use --strategy=auto "
        "(CPU/GPU), or --strategy=mirrored --cpu_devices=N to simulate N replicas") from None
  return tf.distribute.TPUStrategy(resolver)


def create_strategy(name="auto", tpu=None, cpu_devices=0):
  """Creates a strategy by name.

  Args:
    name: "auto" (TPU if `tpu` is given; multi-worker if TF_CONFIG names several workers;
      MirroredStrategy over several GPUs or logical CPUs; else one device), "one-device" (the
      default strategy),
      "mirrored" (all local GPUs, or all logical CPUs), "multi-worker"
      (MultiWorkerMirroredStrategy from `TF_CONFIG`), or "tpu".
    tpu: TPU name or address for `TPUClusterResolver` ("local" on a Cloud TPU VM).
    cpu_devices: split the host CPU into this many logical devices first (0 or 1: no split).
  """
  if name not in STRATEGIES:
    raise ValueError(f"Unknown strategy {name!r}; expected one of {STRATEGIES}")
  if cpu_devices and cpu_devices > 1:
    split_cpu(cpu_devices)
  # Physical, not logical, devices: listing logical ones initialises TensorFlow, after which
  # MultiWorkerMirroredStrategy can no longer configure its collectives.
  gpus = tf.config.list_physical_devices("GPU")
  if name == "auto":
    if tpu:
      name = "tpu"
    elif _has_cluster():
      name = "multi-worker"
    elif len(gpus) > 1 or (cpu_devices or 0) > 1:
      name = "mirrored"
    else:
      name = "one-device"
  if name == "tpu":
    strategy = _tpu_strategy(tpu)
  elif name == "multi-worker":
    strategy = (_MultiWorkerOnCpus(cpu_devices) if not gpus and (cpu_devices or 0) > 1
                else tf.distribute.MultiWorkerMirroredStrategy())
  elif name == "mirrored":
    devices = ([d.name for d in tf.config.list_logical_devices("GPU")]
               or [d.name for d in tf.config.list_logical_devices("CPU")])
    strategy = tf.distribute.MirroredStrategy(devices)
  else:
    # TensorFlow's default strategy: one device (the GPU if there is one), and the one Keras'
    # BackupAndRestore accepts besides the multi-device ones.
    strategy = tf.distribute.get_strategy()
  logging.info("strategy %s with %d replicas", type(strategy).__name__,
               strategy.num_replicas_in_sync)
  return strategy
