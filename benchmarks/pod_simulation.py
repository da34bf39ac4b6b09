"""The pod simulation end to end on the demo: 2 processes × 2 logical CPU devices
(MultiWorkerMirroredStrategy over loopback) train, are SIGKILLed at a random step, resume, finish
and evaluate — and every number equals the single-process 4-replica run's.

    .venv/bin/python benchmarks/pod_simulation.py --out benchmarks/results/pod_simulation

Needs the demo's caches (run the README's first command once). Both runs use configs/demo.py
with `deterministic=True` and `data.num_streams=4` (the data split into 4 streams, so a
4-replica host and a 2-host pod see the same global batches; see docs/training.md):

  host  train.py --strategy=mirrored --cpu_devices=4, straight to the end, then
        evaluate.py --strategy=mirrored --cpu_devices=4.
  pod   two train.py processes, --strategy=multi-worker --cpu_devices=2 each, SIGKILLed
        together at a random step after the first checkpoint, started again (each resumes from
        the chief's latest checkpoint), run to the end; then evaluate.py on the same 2 × 2 pod.

Compared: every step's loss (metrics.jsonl), every in-training and final evaluation metric,
and every float tensor of the final checkpoints (weights and optimizer moments). Writes
results.json and summary.md into --out; the runs stay in --workdir, and `--compare_only`
re-reads them.
"""
import argparse
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from lit_keras.training import runner  # noqa: E402  (after the repository is on the path)
FLAGS = ["--config=configs/demo.py", "--config.deterministic=True", "--config.data.num_streams=4"]


def _free_port():
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _pod_env(ports, index):
  return dict(os.environ, TF_CONFIG=json.dumps(
      {"cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]},
       "task": {"type": "worker", "index": index}}))


def _launch(program, args, log, env=None):
  return subprocess.Popen([sys.executable, os.path.join(ROOT, program), *args], cwd=ROOT,
                          env=env or dict(os.environ), stdout=log, stderr=subprocess.STDOUT)


def _run_layout(layout, program, args, logs, per_process=None):
  """Starts `program` as one process (host) or two (pod); returns the processes."""
  extra = per_process or [[], []]
  if layout == "host":
    return [_launch(program, ["--strategy=mirrored", "--cpu_devices=4", *args, *extra[0]],
                    logs[0])]
  ports = [_free_port(), _free_port()]
  return [_launch(program, ["--strategy=multi-worker", "--cpu_devices=2", *args, *extra[i]],
                  logs[i], _pod_env(ports, i)) for i in range(2)]


def _wait(procs, what):
  codes = [p.wait() for p in procs]
  if codes != [0] * len(procs):
    raise SystemExit(f"{what} failed with exit codes {codes}; see the logs")


def _metrics(workdir):
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return [json.loads(line) for line in f if line.strip()]


def _steps_logged(workdir):
  return max(runner.logged_steps(workdir), default=0)


def _weights(workdir):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  path = tf.train.latest_checkpoint(os.path.join(workdir, "checkpoints"))
  reader = tf.train.load_checkpoint(path)
  dtypes = reader.get_variable_to_dtype_map()
  return path, {n: reader.get_tensor(n) for n in reader.get_variable_to_shape_map()
                if "save_counter" not in n and dtypes[n].is_floating}


def _eval_summaries(workdir):
  """{"step/tag": value} from the in-training evaluation's TensorBoard events (a resumed run's
  later value of a step wins)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  out = {}
  root = os.path.join(workdir, "eval")
  for path in sorted(tf.io.gfile.glob(os.path.join(root, "*", "events.out.tfevents.*"))):
    name = os.path.basename(os.path.dirname(path))  # one directory per evaluator
    for event in tf.compat.v1.train.summary_iterator(path):
      for v in event.summary.value:
        value = tf.make_ndarray(v.tensor) if v.HasField("tensor") else v.simple_value
        if np.ndim(value) == 0:
          out[f"{event.step}/{name}/{v.tag}"] = float(value)
  return out


def _flat(results, prefix=""):
  """{evaluator: {metric: float}} → {"evaluator/metric": float}, numbers only."""
  out = {}
  for k, v in results.items():
    if isinstance(v, dict):
      out.update(_flat(v, f"{prefix}{k}/"))
    elif isinstance(v, (int, float)) and not isinstance(v, bool):
      out[f"{prefix}{k}"] = float(v)
  return out


def main():
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "results", "pod_simulation"))
  p.add_argument("--workdir", default=None, help="where the two runs go (default: a temp dir)")
  p.add_argument("--seed", type=int, default=0, help="picks the step the pod is killed at")
  p.add_argument("--total_steps", type=int, default=300)
  p.add_argument("--compare_only", action="store_true",
                 help="only compare the finished runs already in --workdir")
  a = p.parse_args()
  if a.compare_only and not a.workdir:
    raise SystemExit("--compare_only needs --workdir")
  root = a.workdir or tempfile.mkdtemp(prefix="pod_simulation_")
  os.makedirs(a.out, exist_ok=True)
  train_flags = FLAGS + [f"--config.total_steps={a.total_steps}"]
  result = {"command": " ".join(["benchmarks/pod_simulation.py"] + sys.argv[1:]),
            "total_steps": a.total_steps, "seconds": {}}
  workdirs = {}
  for layout in ("host", "pod"):
    workdir = workdirs[layout] = os.path.join(root, layout)
    if a.compare_only:
      continue
    shutil.rmtree(workdir, ignore_errors=True)
    os.makedirs(workdir)
    n = 1 if layout == "host" else 2
    logs = [open(os.path.join(workdir, f"train_{i}.log"), "ab") for i in range(n)]
    args = train_flags + [f"--workdir={workdir}"]
    t0 = time.time()
    procs = _run_layout(layout, "train.py", args, logs)
    if layout == "pod":
      # SIGKILL both processes at a random moment after the first checkpoint (step 100 in the
      # demo): once a random step is logged (the log is written after each loop of 25 steps),
      # wait a random fraction of a loop's time, so the kill falls inside a loop.
      rng = random.Random(a.seed)
      kill_after = rng.randint(101, a.total_steps - 26)
      logged, t_loop = _steps_logged(workdir), time.time()
      loop_seconds = None
      while logged < kill_after:
        if any(x.poll() is not None for x in procs):
          raise SystemExit(f"the pod ended before step {kill_after}; see {workdir}/train_*.log")
        time.sleep(0.05)
        now = _steps_logged(workdir)
        if now > logged:
          loop_seconds, t_loop, logged = time.time() - t_loop, time.time(), now
      time.sleep(rng.uniform(0.1, 0.9) * loop_seconds)
      for x in procs:
        x.send_signal(signal.SIGKILL)
      for x in procs:
        x.wait()
      result["pod_killed_after_step"] = _steps_logged(workdir)
      result["pod_killed_seconds_into_the_next_loop"] = time.time() - t_loop
      print(f"[pod] SIGKILLed both processes "
            f"{result['pod_killed_seconds_into_the_next_loop']:.1f} s after step "
            f"{result['pod_killed_after_step']} was logged; resuming", flush=True)
      procs = _run_layout(layout, "train.py", args, logs)
    _wait(procs, f"{layout} training")
    result["seconds"][f"{layout}_train"] = time.time() - t0
    print(f"[{layout}] trained in {result['seconds'][f'{layout}_train']:.0f} s", flush=True)
    t0 = time.time()
    # Each process writes its results to its own directory (the pod's two must agree).
    outs = [os.path.join(workdir, f"final_eval{'' if i == 0 else f'_worker{i}'}")
            for i in range(n)]
    procs = _run_layout(layout, "evaluate.py", [f"--workdir={workdir}"], logs,
                        per_process=[[f"--output_dir={o}"] for o in outs])
    _wait(procs, f"{layout} evaluation")
    result["seconds"][f"{layout}_evaluate"] = time.time() - t0
    for log in logs:
      log.close()

  run_file = os.path.join(root, "run.json")  # what the runs recorded (kill point, wall times)
  if a.compare_only:
    with open(run_file) as f:
      result.update({k: v for k, v in json.load(f).items() if k != "command"})
  else:
    with open(run_file, "w") as f:
      json.dump(result, f, indent=2)

  # Compare.
  m = {k: _metrics(w) for k, w in workdirs.items()}
  losses = {k: {r["step"]: r["loss"] for r in v if "loss" in r} for k, v in m.items()}
  assert sorted(losses["host"]) == list(range(1, a.total_steps + 1)), "host: a step is missing"
  assert sorted(losses["pod"]) == list(range(1, a.total_steps + 1)), "pod: a step is missing"
  host_l = np.array([losses["host"][s] for s in sorted(losses["host"])])
  pod_l = np.array([losses["pod"][s] for s in sorted(losses["host"])])
  result["loss_max_abs_diff"] = float(np.max(np.abs(host_l - pod_l)))
  result["loss_first_last"] = {"host": [host_l[0], host_l[-1]], "pod": [pod_l[0], pod_l[-1]]}
  in_training = {k: _eval_summaries(w) for k, w in workdirs.items()}
  assert in_training["host"].keys() == in_training["pod"].keys()
  assert in_training["host"], "no in-training evaluation was written"
  result["in_training_eval_max_abs_diff"] = max(
      abs(in_training["host"][k] - in_training["pod"][k]) for k in in_training["host"])
  result["in_training_eval_metrics"] = len(in_training["host"])
  evals = {}
  for k, w in workdirs.items():
    with open(os.path.join(w, "final_eval", "eval_metrics.json")) as f:
      evals[k] = _flat(json.load(f)["evals"])
  with open(os.path.join(workdirs["pod"], "final_eval_worker1", "eval_metrics.json")) as f:
    worker1 = _flat(json.load(f)["evals"])
  assert evals["host"].keys() == evals["pod"].keys()
  result["eval_max_abs_diff"] = max(abs(evals["host"][k] - evals["pod"][k]) for k in evals["host"])
  result["eval_worker1_equals_chief"] = worker1 == evals["pod"]
  result["eval"] = evals
  (hp, hw), (pp, pw) = _weights(workdirs["host"]), _weights(workdirs["pod"])
  assert os.path.basename(hp) == os.path.basename(pp), (hp, pp)
  assert hw.keys() == pw.keys()
  result["weights"] = len(hw)
  result["weights_max_abs_diff"] = max(float(np.max(np.abs(hw[k] - pw[k]))) for k in hw)
  result["checkpoint"] = os.path.basename(hp)
  with open(os.path.join(a.out, "results.json"), "w") as f:
    json.dump(result, f, indent=2, default=float)

  headline = ["heldout_retrieval/i2t_r@1", "heldout_retrieval/t2i_r@1",
              "heldout_zero_shot/top1", "style3d_train_retrieval/i2t_r@1",
              "style3d_heldout_zero_shot/top1"]
  lines = [f"Pod simulation (`.venv/bin/python {result['command']}`): the pod was SIGKILLed "
           f"{result['pod_killed_seconds_into_the_next_loop']:.1f} s into the loop after step "
           f"{result['pod_killed_after_step']} of {a.total_steps}, and resumed.", "",
           "| | host (1 process × 4 devices) | pod (2 processes × 2 devices, killed + resumed) "
           "| max abs difference |", "|---|---|---|---|",
           f"| loss, step 1 / step {a.total_steps} | {host_l[0]:.6f} / {host_l[-1]:.6f} | "
           f"{pod_l[0]:.6f} / {pod_l[-1]:.6f} | {result['loss_max_abs_diff']:.2e} "
           f"(all {a.total_steps} steps) |",
           f"| final checkpoint ({result['weights']} float tensors: weights and optimizer "
           f"moments, {result['checkpoint']}) | | | "
           f"{result['weights_max_abs_diff']:.2e} |",
           f"| in-training evaluation ({result['in_training_eval_metrics']} numbers) | | | "
           f"{result['in_training_eval_max_abs_diff']:.2e} |"]
  for k in headline:
    if k in evals["host"]:
      lines.append(f"| evaluate.py {k} | {evals['host'][k]:.4f} | {evals['pod'][k]:.4f} | "
                   f"{abs(evals['host'][k] - evals['pod'][k]):.2e} |")
  lines += [f"| evaluate.py, all {len(evals['host'])} numbers | | | "
            f"{result['eval_max_abs_diff']:.2e} |", "",
            f"The pod's second worker computed the same evaluation as its chief: "
            f"{result['eval_worker1_equals_chief']}. Wall times (s; 2 cores shared by all "
            f"processes): " + ", ".join(f"{k} {v:.0f}" for k, v in result["seconds"].items())
            + "."]
  with open(os.path.join(a.out, "summary.md"), "w") as f:
    f.write("\n".join(lines) + "\n")
  print("\n".join(lines))


if __name__ == "__main__":
  main()
