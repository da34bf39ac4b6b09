"""The programs as a user runs them: train.py with in-training evaluation, its TensorBoard files
read back, evaluate.py and lit-keras-export on the result, a diverging run, readable output, and
one-line answers for a wrong environment."""
import glob
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_text  # noqa: F401  (the export's tokenizer ops)

from lit_keras.training import task as task_lib
from lit_keras.training import trainer
from lit_keras_app import console
from lit_keras_app import native_log
from tests import runs
from tests import tiny_tfds
from tests.data import test_tfds_source

# absl's line prefix (`I1201 07:08:03.155493 139841356172160 file.py:105]`) and TF's C++ one.
_ABSL_PREFIX = re.compile(r"^[IWEF]\d{4} \d\d:\d\d:\d\d\.\d+ +\d+ \S+:\d+\]", re.M)
_CPP_PREFIX = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [IWEF] ", re.M)
# The programs' own defaults, not the test runner's TF_CPP_MIN_LOG_LEVEL.
_USER_ENV = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
  return str(tmp_path_factory.mktemp("cache"))


def _run(program, *args, timeout=600):
  proc = subprocess.run([sys.executable, os.path.join(runs.ROOT, program), *args], cwd=runs.ROOT,
                        env=_USER_ENV, capture_output=True, text=True, timeout=timeout)
  return proc.returncode, proc.stdout + proc.stderr


def _train_py(cache, workdir, *flags):
  return _run("train.py", "--config=configs/digits.py", f"--workdir={workdir}",
              f"--config.cache_dir={cache}", *flags)


def _events(directory):
  """{tag: {step: value}} of every TensorBoard event file directly in `directory`."""
  out = {}
  for path in glob.glob(os.path.join(directory, "events.out.tfevents.*")):
    for event in tf.compat.v1.train.summary_iterator(path):
      for v in event.summary.value:
        out.setdefault(v.tag, {})[event.step] = float(tf.make_ndarray(v.tensor))
  return out


@pytest.fixture(scope="module")
def run(cache, tmp_path_factory):
  """train.py on digits: 20 steps, evaluation at steps 10 and 20, a checkpoint at 20."""
  workdir = str(tmp_path_factory.mktemp("run"))
  code, out = _train_py(cache, workdir, "--config.total_steps=20", "--config.log_every=5",
                        "--config.eval_every=10", "--config.checkpoint_every=20")
  assert code == 0, out[-3000:]
  return workdir, out


def test_train_py_output_is_readable(run):
  _, out = run
  assert not _ABSL_PREFIX.search(out) and not _CPP_PREFIX.search(out), out[:2000]
  assert "cuInit" not in out and "WARNING:tensorflow" not in out and "oneDNN" not in out
  # Orbit both logs and prints its progress lines: shown once.
  assert out.count("train | step:     20 | steps/sec") == 1, out
  assert "step 20/20  loss" in out  # lit_keras' own progress line


def test_verbose_brings_the_log_back(run, tmp_path):
  workdir, _ = run
  code, out = _run("evaluate.py", f"--workdir={workdir}", f"--output_dir={tmp_path}", "--verbose")
  assert code == 0, out[-3000:]
  assert _ABSL_PREFIX.search(out) and _CPP_PREFIX.search(out), out[:2000]
  assert native_log.verbose_requested(["p", "--verbose"])
  assert not native_log.verbose_requested(["p", "--verbose", "--noverbose"])
  assert not native_log.verbose_requested(["p", "--verbose=false"])


def test_tensorboard_files_hold_the_logged_metrics(run):
  workdir, _ = run
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    logged = {r["step"]: r for r in map(json.loads, f)}
  train = _events(os.path.join(workdir, "train"))
  # Written at the end of each loop: the loops end at the evaluation steps, 10 and 20.
  assert sorted(train["loss"]) == [10, 20]
  for tag in ("loss", "temperature", "i2t_acc"):
    for step in (10, 20):
      assert train[tag][step] == np.float32(logged[step][tag]), (tag, step)
  retrieval = _events(os.path.join(workdir, "eval", "test_retrieval"))
  zero_shot = _events(os.path.join(workdir, "eval", "test_zero_shot"))
  fewshot = _events(os.path.join(workdir, "eval", "test_fewshot"))
  assert sorted(retrieval["i2t_r@1"]) == [10, 20] and sorted(zero_shot["top1"]) == [10, 20]
  assert {k: sorted(v) for k, v in fewshot.items() if k.endswith("shot")} == {
      f"{rep}_{k}shot": [10, 20] for rep in ("embedding", "features") for k in (1, 5, 10)}
  # The locked PCA features do not train: their probe is the same at both evaluations.
  assert fewshot["features_5shot"][10] == fewshot["features_5shot"][20]


def test_evaluate_py_reproduces_the_in_training_evaluation(run, tmp_path):
  workdir, _ = run
  code, out = _run("evaluate.py", f"--workdir={workdir}", f"--output_dir={tmp_path}")
  assert code == 0, out[-3000:]
  assert not _ABSL_PREFIX.search(out)
  results = json.load(open(tmp_path / "eval_metrics.json"))
  assert results["step"] == 20
  for name in ("test_retrieval", "test_zero_shot", "test_fewshot"):
    for metric, by_step in _events(os.path.join(workdir, "eval", name)).items():
      assert np.float32(results["evals"][name][metric]) == np.float32(by_step[20]), metric
  # The printed table holds the same numbers, and the files it names exist.
  r1 = results["evals"]["test_retrieval"]["i2t_r@1"]
  assert f"i2t R@1 {r1:.3f}" in out
  assert sorted(os.listdir(tmp_path)) == ["confusion_test_zero_shot.png", "eval_metrics.json",
                                          "gallery_test_retrieval.html"]
  assert open(tmp_path / "confusion_test_zero_shot.png", "rb").read(8) == b"\x89PNG\r\n\x1a\n"


def test_export_cli_serves_the_trained_model(run, tmp_path):
  workdir, _ = run
  export = os.path.join(os.path.dirname(sys.executable), "lit-keras-export")
  proc = subprocess.run([export, "--workdir", workdir, "--output", str(tmp_path / "serving"),
                         "--classes", "digits"], env=_USER_ENV, capture_output=True, text=True,
                        timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert "exported step 20 to" in proc.stdout
  config = task_lib.load_config(workdir)
  model, step, _ = trainer.restore_model(config, workdir)
  assert step == 20
  served = tf.saved_model.load(str(tmp_path / "serving"))
  texts = tf.constant(["a photo of the digit three", "seven", "0"])
  got = served.signatures["embed_text"](texts=texts)["embeddings"].numpy()
  np.testing.assert_allclose(got, model.encode_text(texts).numpy(), atol=1e-5)
  assert [c.decode() for c in served.class_names.numpy()] == [
      "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
  probs = served.signatures["zero_shot"](images=tf.zeros([2, 8, 8, 3], tf.uint8))["probabilities"]
  np.testing.assert_allclose(probs.numpy().sum(axis=1), [1.0, 1.0], rtol=1e-6)


def test_a_diverging_run_stops_with_one_line_and_keeps_finite_weights(cache, tmp_path):
  code, out = _train_py(cache, str(tmp_path), "--config.total_steps=50", "--config.log_every=1",
                        "--config.checkpoint_every=1", "--config.optim.lr=1e12",
                        "--config.optim.clip_grad_norm=0", "--config.optim.warmup_steps=0")
  assert code == console.DIVERGED_EXIT_CODE, out[-3000:]
  m = re.search(r"^error: training diverged: non-finite \w+=\S+ at step (\d+)", out, re.M)
  assert m and "Traceback" not in out, out[-3000:]
  last = tf.train.latest_checkpoint(str(tmp_path / "checkpoints"))
  assert last is None or int(last.rsplit("-", 1)[1]) < int(m.group(1))
  if last:
    _, w = runs.weights(str(tmp_path))
    assert all(np.isfinite(v).all() for v in w.values())


@pytest.mark.parametrize("flags, message", [
    (["--strategy=tpu", "--tpu=local"],
     r"--strategy=tpu --tpu=local: no TPU is reachable from this machine \(.*\)\. Run on a "
     r"Cloud TPU VM"),
    (["--config.image.handle=https://tfhub.invalid/google/model/1"],
     r"config.image.handle='https://tfhub.invalid/google/model/1' cannot be fetched .*Offline\? "),
    (["--config.data.train=/no/such/dir/*.tfrecord"],
     r"no TFRecord files match '/no/such/dir/\*.tfrecord'"),
])
def test_wrong_environment_gets_one_line(cache, tmp_path, flags, message):
  code, out = _train_py(cache, str(tmp_path), "--config.total_steps=5", *flags)
  assert code == console.SETUP_ERROR_EXIT_CODE, out[-3000:]
  errors = [line for line in out.splitlines() if line.startswith("error: ")]
  assert len(errors) == 1 and re.match("error: " + message, errors[0]), out[-3000:]
  assert "Traceback" not in out and not os.listdir(tmp_path)  # nothing written


def test_a_workdir_of_another_model_is_refused_and_left_as_it_was(run, cache):
  workdir, _ = run
  config_json = open(os.path.join(workdir, "config.json")).read()
  checkpoints = sorted(os.listdir(os.path.join(workdir, "checkpoints")))
  code, out = _train_py(cache, workdir, "--config.total_steps=30", "--config.model.embed_dim=16")
  assert code == console.SETUP_ERROR_EXIT_CODE, out[-3000:]
  assert re.search(rf"^error: {re.escape(workdir)} cannot resume from \S+ckpt-20 \(.*\): a "
                   r"different model wrote it \(or it is damaged\); config fields that differ "
                   r"from that run: model.embed_dim: 32 -> 16\. Use a new --workdir", out,
                   re.M), out[-3000:]
  assert "warning: Value in checkpoint" not in out
  assert open(os.path.join(workdir, "config.json")).read() == config_json
  assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == checkpoints


def test_training_data_without_a_usable_example_gets_one_line(cache, tmp_path):
  """A training stream would wait forever on such data; train.py says so at once."""
  from lit_keras.data import schema
  bad = str(tmp_path / "bad.tfrecord")
  with tf.io.TFRecordWriter(bad) as w:
    w.write(b"\x0a\xff not an example")
    w.write(schema.image_example(b"RIFF....WEBP", ["a caption"], "webp"))
    w.write(schema.image_example(b"\x89PNG\r\n\x1a\n....", [" "], "no caption"))
  workdir = tmp_path / "workdir"
  code, out = _train_py(cache, str(workdir), "--config.total_steps=5",
                        f"--config.data.train={bad}")
  assert code == console.SETUP_ERROR_EXIT_CODE, out[-3000:]
  assert re.search(r"^error: no usable training example in 1 file\(s\) of '.*bad.tfrecord'",
                   out, re.M), out[-3000:]
  assert not workdir.exists()


_OWN_DATA_CONFIG = """
import ml_collections

from configs import common
from configs import digits


def get_config(arg=None):
  c = digits.get_config()
  with c.unlocked():
    c.dataset = ""  # data of one's own: globs and a TFDS source, no registered dataset
    c.data.train = "{digits}/train-*.tfrecord"
    c.evals = ml_collections.ConfigDict()
    c.evals.val_retrieval = common.evaluator("retrieval", data="{digits}/test-*.tfrecord")
    c.evals.val_zero_shot = common.evaluator("zero_shot", data="{digits}/test-*.tfrecord",
                                             classes="{classes}", templates="{templates}")
    c.evals.val_fewshot = common.evaluator("fewshot", data="{digits}/test-*.tfrecord",
                                           train_data="{digits}/train-*.tfrecord", shots=(1, 5),
                                           seeds=2, representations=("features",))
    c.evals.colors_zero_shot = common.evaluator("zero_shot", data="{colors}")
  return c
"""


def test_own_data_evaluators_all_logged_during_training_and_by_evaluate_py(run, cache, tmp_path):
  """A config declaring four evaluators on its own data (TFRecord globs with a class file, a
  few-shot probe, a TFDS source): train.py logs every one at each `eval_every`, and evaluate.py
  on the workdir reproduces the last values."""
  colors = tiny_tfds.prepare(str(tmp_path / "tfds")) + f":test@{tmp_path / 'tfds'}"
  (tmp_path / "classes.txt").write_text("\n".join(["zero", "one", "two", "three", "four",
                                                   "five", "six", "seven", "eight", "nine"]))
  (tmp_path / "templates.txt").write_text("the number {}\nhandwritten {}\n")
  config = tmp_path / "own_data.py"
  config.write_text(_OWN_DATA_CONFIG.format(digits=os.path.join(cache, "data", "digits"),
                                            classes=tmp_path / "classes.txt",
                                            templates=tmp_path / "templates.txt", colors=colors))
  workdir = str(tmp_path / "workdir")
  code, out = _run("train.py", f"--config={config}", f"--workdir={workdir}",
                   f"--config.cache_dir={cache}", "--config.total_steps=10",
                   "--config.eval_every=5", "--config.log_every=5",
                   "--config.checkpoint_every=10")
  assert code == 0, out[-3000:]
  headline = {"val_retrieval": "t2i_r@1", "val_zero_shot": "top1",
              "val_fewshot": "features_5shot", "colors_zero_shot": "top1"}
  events = {name: _events(os.path.join(workdir, "eval", name)) for name in headline}
  for name, metric in headline.items():
    assert sorted(events[name][metric]) == [5, 10], (name, events[name])
  code, out = _run("evaluate.py", f"--workdir={workdir}", f"--output_dir={tmp_path / 'eval'}")
  assert code == 0, out[-3000:]
  results = json.load(open(tmp_path / "eval" / "eval_metrics.json"))["evals"]
  assert sorted(results) == sorted(headline)
  assert results["colors_zero_shot"]["classes"] == 3  # the TFDS set's own label names
  assert results["val_zero_shot"]["templates"] == 2 and results["val_zero_shot"]["classes"] == 10
  for name, by_metric in events.items():
    for metric, by_step in by_metric.items():
      assert np.float32(results[name][metric]) == np.float32(by_step[10]), (name, metric)
  assert sorted(os.listdir(tmp_path / "eval")) == [
      "confusion_colors_zero_shot.png", "confusion_val_zero_shot.png", "eval_metrics.json",
      "gallery_val_retrieval.html"]


def test_evaluate_py_on_a_tfds_source_equals_the_same_examples_as_tfrecords(run, tmp_path):
  """evaluate.py --data=tfds:...: zero-shot with the dataset's class names, retrieval and a
  few-shot probe, the same numbers as on the same examples written as TFRecords."""
  workdir, _ = run
  prefix = tiny_tfds.prepare(str(tmp_path / "tfds"))
  test, train = (f"{prefix}:{split}@{tmp_path / 'tfds'}" for split in ("test", "train"))
  records = {split: test_tfds_source._as_tfrecords(str(tmp_path / f"{split}.tfrecord"), split,  # pylint: disable=protected-access
                                                   source)
             for split, source in (("test", test), ("train", train))}
  (tmp_path / "classes.txt").write_text("red square\ngreen circle\nblue bar\n")
  outputs = {}
  for kind, flags in (("tfds", [f"--data={test}", f"--fewshot_train={train}"]),
                      ("records", [f"--data={records['test']}", f"--fewshot_train="
                                   f"{records['train']}", f"--classes={tmp_path}/classes.txt"])):
    out_dir = tmp_path / f"eval_{kind}"
    code, out = _run("evaluate.py", f"--workdir={workdir}", f"--output_dir={out_dir}", *flags)
    assert code == 0, out[-3000:]
    outputs[kind] = json.load(open(out_dir / "eval_metrics.json"))["evals"]
    assert sorted(os.listdir(out_dir)) == [
        "confusion_zero_shot.png", "eval_metrics.json", "gallery_retrieval.html"]
    assert re.search(r"^fewshot +10  few-shot embedding 1-shot \S+ 5-shot", out, re.M), out
  for name in ("retrieval", "zero_shot", "fewshot"):
    got = {k: v for k, v in outputs["tfds"][name].items() if k not in ("data", "files")}
    want = {k: v for k, v in outputs["records"][name].items() if k not in ("data", "files")}
    assert got == want, name
  assert outputs["tfds"]["zero_shot"]["classes"] == 3
