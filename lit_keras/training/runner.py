"""The training runner, on Orbit (tf-models-official's training-loop engine).

`LiTTrainer` is an `orbit.StandardTrainer`: `steps_per_loop` steps run inside one `tf.function`
call as a `tf.while_loop` with the iterator passed in (how TPUs are kept busy); each step is
`LiTModel.train_step_values` under `strategy.run` — the same step `fit()` runs. An
`orbit.Controller` drives the loops and, at loop boundaries only, saves checkpoints (a
`tf.train.CheckpointManager` with `checkpoint_interval`), runs the evaluators (`LiTEvaluator`) and
the actions: the progress line and the per-step log, the NaN/Inf guard and the SIGTERM check.

Every step's values (loss, accuracies, temperature, gradient norm, ...) are kept, not only each
loop's: they go to `<workdir>/metrics.jsonl`, one line per step. A resumed run redoes the steps
after its checkpoint and logs them again; the last line of a step is the one that counts.
"""
import json
import math
import os
import signal
import time

from absl import logging
import orbit
import tensorflow as tf

from lit_keras.evaluation import evaluators as evaluators_lib

PREEMPTED_EXIT_CODE = 42
METRICS_FILE = "metrics.jsonl"


def logged_steps(workdir):
  """The steps a run in `workdir` has logged to its METRICS_FILE, in order (none yet: [])."""
  path = os.path.join(workdir, METRICS_FILE)
  if not tf.io.gfile.exists(path):
    return []
  with tf.io.gfile.GFile(path) as f:
    return [json.loads(line)["step"] for line in f if line.strip()]


class Preempted(Exception):
  """Raised after a SIGTERM once the loop has finished and a checkpoint is saved."""


class LiTTrainer(orbit.StandardTrainer):
  """Runs `model.train_step_values` (a compiled `LiTModel`) `num_steps` times per call.

  Args:
    model: a compiled `LiTModel`, built under `strategy.scope()`.
    strategy: the tf.distribute strategy.
    dataset: a distributed dataset of per-replica batches.
    max_steps_per_loop: the most steps one call will run (sizes the per-step record).
    jit_compile: XLA-compile the replica step (what a TPU always does).
  """

  def __init__(self, model, strategy, dataset, max_steps_per_loop, jit_compile=False):
    super().__init__(dataset, options=orbit.StandardTrainerOptions(use_tf_while_loop=True))
    self.model = model
    self.strategy = strategy
    self.jit_compile = bool(jit_compile)
    self.names = model.step_metric_names()
    self.history = None  # [steps of the last call, len(names)] after each call
    # Host variables (outside the strategy, written in cross-replica context by the loop): every
    # step's values, so that a loop of many steps still reports each of them.
    self._record = tf.Variable(tf.zeros([int(max_steps_per_loop), len(self.names)]),
                               trainable=False, name="record")
    self._slot = tf.Variable(0, trainable=False, dtype=tf.int32, name="slot")

  def reset(self):
    """Forgets the traced loop (after the trainable variables changed, e.g. a delayed unlock)."""
    self._train_loop_fn = None

  def train_loop_begin(self):
    self._slot.assign(0)

  def train_step(self, iterator):
    step = tf.function(self.model.train_step_values, jit_compile=self.jit_compile)
    values = self.strategy.run(step, args=(next(iterator),))
    # Every replica returns the same global values: take this host's first replica's.
    values = {k: self.strategy.experimental_local_results(v)[0] for k, v in values.items()}
    row = tf.stack([tf.cast(values[k], tf.float32) for k in self.names])
    self._record.scatter_nd_update([[self._slot]], [row])
    self._slot.assign_add(1)

  def train_loop_end(self):
    n = int(self._slot.numpy())
    self.history = self._record.numpy()[:n]
    last = dict(zip(self.names, self.history[-1].tolist()))
    out = {k: last[k] for k in ("loss", "grad_norm", "i2t_acc", "t2i_acc", "temperature")
           if k in last}
    out["learning_rate"] = float(tf.convert_to_tensor(self.model.optimizer.learning_rate))
    return out


class LiTEvaluator(orbit.AbstractEvaluator):
  """The config's evaluators as an Orbit evaluator: `evaluate()` → {name: {metric: value}}."""

  def __init__(self, model, evaluators, strategy=None):
    self.model, self.evaluators, self.strategy = model, evaluators, strategy

  def evaluate(self, num_steps):
    del num_steps  # each evaluator runs over its whole set
    results = evaluators_lib.evaluate(self.evaluators, self.model, strategy=self.strategy)
    numbers = {name: {k: v for k, v in m.items() if isinstance(v, float)}
               for name, m in results.items()}
    logging.info("eval: %s", "  ".join(f"{n}/{k} {v:.3f}" for n, m in numbers.items()
                                       for k, v in m.items()))
    return numbers


class StepLog:
  """Action: records every step's values in `metrics.jsonl` (one line per step; a resumed run
  drops the lines of the steps it redoes), prints the progress line at `log_every` steps, and
  raises `FloatingPointError` — before the loop's checkpoint is written — on a non-finite loss
  or gradient norm.

  The file is rewritten whole through a temporary name after every loop (`tf.io.gfile` has no
  append on object stores), so a killed run leaves it complete up to its last loop.
  """

  def __init__(self, trainer, global_step, total_steps, batch_size, log_every, path=None,
               learning_rate=None):
    self.trainer, self.step_var = trainer, global_step
    self.total, self.batch_size, self.log_every = total_steps, batch_size, log_every
    self.path, self.learning_rate = path, learning_rate
    self.t0, self.last_step = time.time(), int(global_step.numpy())
    self.lines, self.last_records = [], []
    if path and tf.io.gfile.exists(path):
      with tf.io.gfile.GFile(path, "r") as f:
        self.lines = [line for line in f.read().splitlines()
                      if line and json.loads(line)["step"] <= self.last_step]

  def __call__(self, output):
    del output
    end = int(self.step_var.numpy())
    rows = self.trainer.history
    names = self.trainer.names
    records = [{"step": end - len(rows) + 1 + i, **dict(zip(names, map(float, row)))}
               for i, row in enumerate(rows)]
    bad = [(r["step"], k, r[k]) for r in records for k in ("loss", "grad_norm")
           if not math.isfinite(r[k])]
    if bad:
      step, k, v = bad[0]
      raise FloatingPointError(f"non-finite {k}={v} at step {step}; stopping without saving")
    self.last_records = records
    if self.path:
      self.lines += [json.dumps(r) for r in records]
      with tf.io.gfile.GFile(self.path + ".tmp", "w") as f:
        f.write("\n".join(self.lines) + "\n")
      tf.io.gfile.rename(self.path + ".tmp", self.path, overwrite=True)
    if end // self.log_every > self.last_step // self.log_every or end == self.total:
      steps_per_s = (end - self.last_step) / max(time.time() - self.t0, 1e-9)
      eta = (self.total - end) / max(steps_per_s, 1e-9)
      m = records[-1]
      lr = float(self.learning_rate()) if self.learning_rate else float("nan")
      logging.info("step %d/%d  loss %.4f  i2t %.3f  t2i %.3f  t %.2f  |g| %.3f  lr %.2e  "
                   "%.2f steps/s  %.0f ex/s  ETA %.0fs", end, self.total, m["loss"],
                   m["i2t_acc"], m["t2i_acc"], m["temperature"], m["grad_norm"], lr,
                   steps_per_s, steps_per_s * self.batch_size, eta)
      self.t0, self.last_step = time.time(), end


class Preemption:
  """Action and context: SIGTERM sets a flag; at the next loop boundary the checkpoint is saved
  and `Preempted` raised (a scheduler restarts the job, which resumes from that checkpoint)."""

  def __init__(self, manager, global_step):
    self.manager, self.step_var, self.flag = manager, global_step, []
    self._previous = None

  def __enter__(self):
    self._previous = signal.signal(signal.SIGTERM, lambda *_: self.flag.append(True))
    return self

  def __exit__(self, *exc):
    signal.signal(signal.SIGTERM, self._previous)
    return False

  def __call__(self, output):
    del output
    if self.flag:
      step = int(self.step_var.numpy())
      path = self.manager.save(checkpoint_number=step)
      raise Preempted(f"SIGTERM: saved step {step} to {path}")


def boundaries(start, total, every=(), extra=()):
  """The steps at which training pauses (evaluation, unlocking), in order, ending at `total`."""
  points = {total} | {s for s in extra if start < s < total}
  for e in every:
    if e:
      points |= set(range((start // e + 1) * e, total, e))
  return sorted(p for p in points if p > start)
