"""Helpers for tests that train: configs on the digits data, train.py subprocesses, checkpoints."""
import os
import subprocess
import sys
import time

import tensorflow as tf

from configs import digits as digits_config
from lit_keras.training import task as task_lib
from lit_keras.training import trainer
from lit_keras_app import resolve

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def config(cache, **overrides):
  """The digits config in `cache`, no in-training evaluation, with dotted-key overrides."""
  c = digits_config.get_config()
  with c.unlocked():
    c.cache_dir = cache
    c.eval_every = 0
    for k, v in overrides.items():
      node = c
      *path, leaf = k.split(".")
      for p in path:
        node = node[p]
      node[leaf] = v
  return c


def prepare(c):
  """What train.py does before training: resolve, validate, pre-compute."""
  return task_lib.LiTTask(resolve.resolve(c)).prepare()


def train(c, workdir, strategy=None):
  """Trains config `c` in `workdir`; returns (last metrics, resolved config)."""
  task = prepare(c)
  strategy = strategy or tf.distribute.get_strategy()
  return trainer.train(task, workdir, strategy), task.config


def weights(workdir, sub="checkpoints"):
  """(latest checkpoint path, {name: float tensor}) without optimizer slots."""
  path = tf.train.latest_checkpoint(os.path.join(workdir, sub))
  reader = tf.train.load_checkpoint(path)
  dtypes = reader.get_variable_to_dtype_map()
  names = sorted(n for n in reader.get_variable_to_shape_map()
                 if "OPTIMIZER_SLOT" not in n and "save_counter" not in n
                 and dtypes[n].is_floating)
  return path, {n: reader.get_tensor(n) for n in names}


def run_train_py(cache, workdir, *flags, env=None, config_file="configs/digits.py"):
  cmd = [sys.executable, os.path.join(ROOT, "train.py"), f"--config={config_file}",
         f"--workdir={workdir}", f"--config.cache_dir={cache}", "--config.eval_every=0",
         *flags]
  return subprocess.Popen(cmd, cwd=ROOT, env=dict(os.environ, **(env or {})),
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def wait_for_checkpoint(workdir, proc, timeout=120):
  t0 = time.time()
  while time.time() - t0 < timeout:
    if tf.train.latest_checkpoint(os.path.join(workdir, "checkpoints")):
      return
    if proc.poll() is not None:
      raise AssertionError(proc.stdout.read())
    time.sleep(0.2)
  raise AssertionError("no checkpoint appeared")
