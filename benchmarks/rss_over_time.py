"""Resident memory of a train.py (or evaluate.py) run over time, attributed to what it was doing.

    # the README's main job from an empty cache: where its peak comes from
    .venv/bin/python benchmarks/rss_over_time.py --out benchmarks/results/rss_main_job \
        --fresh_cache -- --config=configs/demo.py
    # a long pre-computed run: does memory stay flat after warm-up?
    .venv/bin/python benchmarks/rss_over_time.py --out benchmarks/results/rss_2000_steps \
        -- --config=configs/demo.py --config.total_steps=2000 --config.eval_every=0
    # evaluate.py on a finished run
    .venv/bin/python benchmarks/rss_over_time.py --program evaluate.py \
        --out benchmarks/results/rss_evaluate -- --workdir=workdirs/demo

Runs the program (the arguments after `--`; train.py gets a fresh --workdir unless one is given)
as a child process, samples the
resident set (VmRSS) of the child and of its whole process tree (npm, converter workers) every
--interval seconds, and tags each sample with the child's last printed line (the stage) and
the last step it logged. Writes samples.jsonl and summary.json into --out and prints the
summary: the peak and its stage, and RSS at each 10% of the steps.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _rss_kb(pid):
  try:
    with open(f"/proc/{pid}/status") as f:
      for line in f:
        if line.startswith("VmRSS:"):
          return int(line.split()[1])
  except OSError:
    pass
  return 0


def _tree(pid):
  """pid and all its descendants (from /proc/*/stat parent links)."""
  children = {}
  for entry in os.listdir("/proc"):
    if entry.isdigit():
      try:
        with open(f"/proc/{entry}/stat") as f:
          ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
      except (OSError, ValueError, IndexError):
        pass
  out, todo = [], [pid]
  while todo:
    p = todo.pop()
    out.append(p)
    todo.extend(children.get(p, []))
  return out


def main():
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--out", required=True, help="directory for samples.jsonl and summary.json")
  p.add_argument("--interval", type=float, default=1.0, help="seconds between samples")
  p.add_argument("--program", default="train.py", choices=["train.py", "evaluate.py"],
                 help="which program to run")
  p.add_argument("--fresh_cache", action="store_true",
                 help="run with an empty LIT_KERAS_CACHE (data, ports and embeddings rebuilt)")
  p.add_argument("train_args", nargs="*", help="the program's arguments (after --)")
  args = p.parse_args()
  os.makedirs(args.out, exist_ok=True)
  extra = [] if any(a.startswith("--workdir") for a in args.train_args) else [
      f"--workdir={tempfile.mkdtemp(prefix='rss_workdir_')}"]
  env = dict(os.environ)
  if args.fresh_cache:
    env["LIT_KERAS_CACHE"] = tempfile.mkdtemp(prefix="rss_cache_")
  cmd = [sys.executable, os.path.join(ROOT, args.program), *extra, *args.train_args]
  child = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, bufsize=1)
  state = {"line": "start", "step": 0}

  def read():
    for line in child.stdout:
      line = line.rstrip()
      if line.strip():
        state["line"] = line[-160:]
        m = re.match(r"step (\d+)/\d+", line)
        if m:
          state["step"] = int(m.group(1))
      print(line, flush=True)
  reader = threading.Thread(target=read, daemon=True)
  reader.start()
  samples, t0 = [], time.time()
  with open(os.path.join(args.out, "samples.jsonl"), "w") as f:
    while child.poll() is None:
      s = {"t": round(time.time() - t0, 1), "rss_mb": _rss_kb(child.pid) / 1024,
           "tree_rss_mb": sum(_rss_kb(q) for q in _tree(child.pid)) / 1024,
           "step": state["step"], "stage": state["line"]}
      samples.append(s)
      f.write(json.dumps(s) + "\n")
      f.flush()
      time.sleep(args.interval)
  reader.join(timeout=10)
  peak = max(samples, key=lambda s: s["rss_mb"])
  tree_peak = max(samples, key=lambda s: s["tree_rss_mb"])
  last_step = max(s["step"] for s in samples)
  by_step = {}
  for s in samples:  # RSS when each 10% of the steps was first reached
    for k in range(1, 11):
      mark = last_step * k // 10
      if mark and s["step"] >= mark and mark not in by_step:
        by_step[mark] = round(s["rss_mb"], 1)
  summary = {"command": " ".join(cmd), "exit_code": child.returncode,
             "seconds": round(time.time() - t0, 1), "fresh_cache": args.fresh_cache,
             "peak_rss_mb": round(peak["rss_mb"], 1), "peak_at_s": peak["t"],
             "peak_stage": peak["stage"], "peak_tree_rss_mb": round(tree_peak["tree_rss_mb"], 1),
             "peak_tree_stage": tree_peak["stage"], "rss_mb_at_step": by_step}
  with open(os.path.join(args.out, "summary.json"), "w") as f:
    json.dump(summary, f, indent=2)
  print(json.dumps(summary, indent=2))
  sys.exit(child.returncode)


if __name__ == "__main__":
  main()
