"""The README's main job (train.py + evaluate.py on the demo) at several commits, interleaved.

    .venv/bin/python benchmarks/main_job_commits.py --commits 61c6fd0,fa32f1d --repeats 2 \
        --out benchmarks/results/main_job_commits.jsonl

Each commit is checked out into a temporary git worktree. Each (repeat, commit), in turn, runs
the README's two programs there with this venv's Python and an empty `LIT_KERAS_CACHE` (so the
data, the EfficientNet-Lite0 port and the pre-computed embeddings are built as on a fresh clone;
`npm` keeps its own download cache), each under `/usr/bin/time -v`. The stages are timed from the
programs' own progress lines, as they arrive:

- `data+port`: train.py's start (imports included) to its last data-building or port line;
- `precompute`: from there to the first training line (the pre-computation, building the model);
- `training`: to train.py's exit (the model, 300 steps, three held-out evaluations, saving);
- `evaluate`: evaluate.py, start to exit;
- `programs`: the two together; `peak_mb`: the larger of the two programs' peak RSS.

Prints the median (range) of each stage per commit and appends every run's JSON line (with its
commit and the printed results table) to --out. The install (`.ci/install`) is not part of it.
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STAGES = ("data+port", "precompute", "training", "evaluate", "programs")


def _run(argv, cwd, env, marks):
  """Runs argv under /usr/bin/time -v; returns (seconds, peak MB, {mark: [seconds from start of
  each matching line]}, output lines). `marks`: {name: regex}."""
  t0 = time.monotonic()
  proc = subprocess.Popen(["/usr/bin/time", "-v", *argv], cwd=cwd, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
  seen, lines, buf = {}, [], b""
  for chunk in iter(lambda: proc.stdout.read1(65536), b""):
    buf += chunk
    *done, buf = re.split(rb"[\r\n]", buf)
    for raw in done:
      line = raw.decode("utf-8", "replace")
      lines.append(line)
      for name, pattern in marks.items():
        if re.search(pattern, line):
          seen.setdefault(name, []).append(time.monotonic() - t0)
  proc.wait()
  seconds = time.monotonic() - t0
  if proc.returncode:
    raise SystemExit(f"{' '.join(argv)} failed ({proc.returncode}):\n" + "\n".join(lines[-30:]))
  peak_kb = next(int(l.split(":")[1]) for l in lines if "Maximum resident set size" in l)
  return seconds, peak_kb / 1024, seen, lines


def run_once(tree, tmp):
  cache, workdir = tempfile.mkdtemp(dir=tmp), tempfile.mkdtemp(dir=tmp)
  env = dict(os.environ, LIT_KERAS_CACHE=cache, PYTHONUNBUFFERED="1", TF_USE_LEGACY_KERAS="1",
             PYTHONPATH=tree)
  train_s, train_mb, marks, _ = _run(
      [sys.executable, "train.py", "--config=configs/demo.py", f"--workdir={workdir}"], tree, env,
      {"data": r"^\[(emoji|npm|lit_keras\.pretrained)\]", "training": r"train \| step:\s+0 "})
  eval_s, eval_mb, _, lines = _run(
      [sys.executable, "evaluate.py", f"--workdir={workdir}"], tree, env, {})
  table = [l for l in lines if re.match(r"^(heldout|style3d)_\w+\s+\d+\s", l)]
  data_end, train_start = marks["data"][-1], marks["training"][0]
  return {"data+port": data_end, "precompute": train_start - data_end,
          "training": train_s - train_start, "evaluate": eval_s,
          "programs": train_s + eval_s, "peak_mb": max(train_mb, eval_mb), "table": table}


def main():
  p = argparse.ArgumentParser(description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--commits", required=True, help="comma-separated commits, oldest first")
  p.add_argument("--repeats", type=int, default=2)
  p.add_argument("--out", default=None)
  a = p.parse_args()
  commits = a.commits.split(",")
  rows = []
  with tempfile.TemporaryDirectory() as tmp:
    trees = {}
    for c in commits:
      trees[c] = os.path.join(tmp, "tree_" + c)
      subprocess.run(["git", "-C", ROOT, "worktree", "add", "--detach", trees[c], c], check=True,
                     stdout=subprocess.DEVNULL)
    try:
      for r in range(a.repeats):
        for c in commits:
          row = dict(run_once(trees[c], tmp), commit=c, repeat=r)
          rows.append(row)
          print(json.dumps({k: round(v, 1) if isinstance(v, float) else v
                            for k, v in row.items() if k != "table"}), flush=True)
          if a.out:
            with open(a.out, "a") as f:
              f.write(json.dumps(row) + "\n")
    finally:
      for c in commits:
        subprocess.run(["git", "-C", ROOT, "worktree", "remove", "--force", trees[c]],
                       check=False)
  for c in commits:
    mine = [r for r in rows if r["commit"] == c]
    cells = []
    for k in STAGES + ("peak_mb",):
      v = [r[k] for r in mine]
      cells.append(f"{k} {statistics.median(v):.0f} ({min(v):.0f}–{max(v):.0f})")
    print(f"{c}: " + " | ".join(cells))
  for c in commits:
    print(f"{c} table (last run):\n  " + "\n  ".join(
        [r for r in rows if r["commit"] == c][-1]["table"]))


if __name__ == "__main__":
  main()
