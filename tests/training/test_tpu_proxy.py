"""A TPU compiles every function it runs with XLA. On CPU, the TPU configs (shrunk, with local
hub fixtures for their TF-Hub handles, mixed precision on, text tokenized in the pipeline) run
every accelerator function with `jit_compile=True` — which fails loudly on anything XLA cannot
compile: the multi-step training loop's step, the fit() step, evaluation embedding and the
pre-computation of image embeddings."""
import importlib

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from configs import common
from lit_keras.data import embeddings
from lit_keras.evaluation import evaluators
from lit_keras.training import keras_fit
from lit_keras.training import task as task_lib
from lit_keras.training import trainer
from lit_keras_app import resolve
from tests import runs


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
  c = resolve.resolve(runs.config(str(tmp_path_factory.mktemp("cache"))))
  return c.data.train, c.evals.test_retrieval.data


def _shrunk(name, image_module, bert_pair, digits):
  config = importlib.import_module(f"configs.{name}").get_config()
  with config.unlocked():
    config.image.handle, config.image.image_size = image_module, 16
    config.text.preprocess, config.text.encoder = bert_pair
    config.text.pooling = "mean"
    config.data.train = digits[0]
    # One loop call (XLA recompiles a fine-tuned hub module at every call on CPU: the test
    # is about compiling, docs/training.md says more).
    config.batch_size, config.total_steps, config.steps_per_loop = 8, 2, 2
    config.log_every = config.checkpoint_every = 2
    config.eval_every, config.optim.warmup_steps = 0, 1
    config.jit_compile = True
    assert config.mixed_precision  # the TPU recipes train in bfloat16
    config.evals.val_retrieval.data = digits[1]
    config.evals.extra = common.evaluator("zero_shot", data=digits[1], classes="digits",
                                          templates="digits")
  return config


@pytest.mark.parametrize("name", [
    "lit_b16_bert_base",
    pytest.param("lit_bit_adafactor", marks=pytest.mark.slow),  # ~4 min on 2 cores
])
def test_every_accelerator_function_compiles(name, tmp_path, image_module, bert_pair, digits):
  config = _shrunk(name, image_module, bert_pair, digits)
  strategy = tf.distribute.get_strategy()
  try:
    task = task_lib.LiTTask(config).prepare()
    metrics = trainer.train(task, str(tmp_path / "orbit"), strategy)  # the loop's step, XLA
    assert np.isfinite(metrics["loss"])
    history = keras_fit.fit(task, str(tmp_path / "fit"), strategy)  # fit(jit_compile=True)
    assert np.isfinite(history.history["loss"][-1])
    model, _, _ = trainer.restore_model(config, str(tmp_path / "orbit"))
    results = evaluators.evaluate(task.build_evaluators(), model, jit_compile=True)
    assert results["val_retrieval"]["images"] == 397 and 0 <= results["extra"]["top1"] <= 1
    source = task.image_source()
    _, dim, count = embeddings.precompute(
        task_lib.image_file_embedder(source, jit_compile=True, batch_size=64), source,
        digits[1], str(tmp_path / "cache"))
    assert (dim, count) == (16, 397)
  finally:
    tf_keras.mixed_precision.set_global_policy("float32")
