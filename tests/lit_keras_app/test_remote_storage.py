"""Everything a run reads and writes goes through tf.io.gfile, so the cache, the data, the
workdir and the exports can live on gs://. TensorFlow's in-memory `ram://` filesystem stands in
for it: dataset, derived tower, pre-computed embeddings, training, evaluation files, exports."""
import json
import os

import numpy as np
import tensorflow as tf

from lit_keras import towers
from lit_keras.evaluation import evaluators
from lit_keras.export import serving
from lit_keras.export import tfhub_format
from lit_keras.training import task as task_lib
from lit_keras.training import trainer
from lit_keras_app.datasets import digits
from tests import runs


def test_a_whole_run_on_a_remote_filesystem(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)  # anything written to a relative local path would land here
  cache, workdir = "ram://cache", "ram://run"
  config = runs.config(cache, total_steps=4, steps_per_loop=2, checkpoint_every=2, log_every=2,
                       eval_every=4)
  with config.unlocked():
    config.precompute.enabled = True
  task = runs.prepare(config)
  assert task.config.data.train.startswith("ram://cache/data/digits/")
  assert task.config.image.handle.startswith("ram://cache/")
  assert task.config.precompute.train.startswith("ram://cache/embeddings/")
  metrics = trainer.train(task, workdir, tf.distribute.get_strategy())
  assert np.isfinite(metrics["loss"])
  for name in ("config.json", "metrics.jsonl", "train_metrics.json", "checkpoints/checkpoint"):
    assert tf.io.gfile.exists(f"{workdir}/{name}"), name
  assert tf.io.gfile.glob(f"{workdir}/train/events.out.tfevents.*")
  with tf.io.gfile.GFile(f"{workdir}/metrics.jsonl") as f:
    assert [json.loads(line)["step"] for line in f.read().splitlines()] == [1, 2, 3, 4]

  config = task_lib.load_config(workdir)
  model, step, _ = trainer.restore_model(config, workdir)
  assert step == 4
  results = evaluators.evaluate(task_lib.LiTTask(config).build_evaluators(), model,
                                out_dir=f"{workdir}/eval")
  with tf.io.gfile.GFile(results["test_zero_shot"]["files"]["confusion_png"], "rb") as f:
    assert f.read(4) == b"\x89PNG"
  assert tf.io.gfile.exists(results["test_retrieval"]["files"]["gallery_html"])

  serving.export(model, "ram://export", 8, list(digits.CLASS_NAMES), ["the number {}"])
  loaded = tf.saved_model.load("ram://export")
  want = model.encode_text(tf.constant(["the number three"])).numpy()
  got = loaded.signatures["embed_text"](texts=tf.constant(["the number three"]))["embeddings"]
  np.testing.assert_allclose(got.numpy(), want, atol=1e-5)
  pre, enc = tfhub_format.export_text_tower(model.text_tower, "ram://towers/text")
  tower = towers.HubBertTextTower(pre, enc, pooling=model.text_tower.pooling)
  np.testing.assert_allclose(tower(tf.constant(["the number three"])).numpy(),
                             model.text_tower(tf.constant(["the number three"])).numpy(),
                             atol=1e-5)
  assert os.listdir(tmp_path) == []  # nothing went to the local disk instead
