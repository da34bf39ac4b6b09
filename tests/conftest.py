"""Test setup: Keras 2, 4 logical CPU devices for real tf.distribute, tiny SavedModel fixtures."""
import lit_keras  # noqa: F401  (first: pins Keras 2 before TensorFlow is imported anywhere)

import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

NUM_LOGICAL_CPUS = 4

# Split the CPU into 4 logical devices before TF initialises, so MirroredStrategy runs 4 replicas.
_cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(
    _cpu, [tf.config.LogicalDeviceConfiguration()] * NUM_LOGICAL_CPUS)

from tests import tiny_models  # noqa: E402


@pytest.fixture(scope="session")
def image_module(tmp_path_factory):
  """A tiny real image feature-vector SavedModel (conv + BatchNorm), loaded by path."""
  return tiny_models.build_image_module(str(tmp_path_factory.mktemp("hub") / "image_fv"))


@pytest.fixture(scope="session")
def vocab_file(tmp_path_factory):
  return tiny_models.write_vocab(str(tmp_path_factory.mktemp("vocab") / "vocab.txt"))


@pytest.fixture(scope="session")
def bert_pair(tmp_path_factory, vocab_file):
  """A tiny BERT preprocess + encoder pair exported with tfm's export_tfhub_lib."""
  return tiny_models.build_bert_pair(str(tmp_path_factory.mktemp("hub") / "bert"), vocab_file)


@pytest.fixture(scope="session")
def mirrored_strategy():
  # One instance per process: several MirroredStrategy objects in one process can mix up their
  # collective instance keys ("Shape mismatch in the collective instance").
  return tf.distribute.MirroredStrategy([f"/cpu:{i}" for i in range(NUM_LOGICAL_CPUS)])
