"""One bench_tiny mode at several commits of this repository, interleaved: before/after figures.

    .venv/bin/python benchmarks/bench_commits.py --commits 811d4a1,bb11934,9b9950c \
        --modes pre,lu --repeats 3 --out benchmarks/results/bench_commits.jsonl

Each commit is checked out into a temporary git worktree and each (repeat, mode, commit) runs
bench_tiny's child there, in a fresh process, with that worktree's `lit_keras` first on the path
(this venv's packages otherwise). The child is the one `bench_tiny.py` runs (graph mode unless
--jit_compile=1, fp32, the bench-tiny shape); `lu` loads a locked ViT exported once, by the
first commit's child. Prints the median pairs/s and peak RSS above import per (mode, commit), and
appends every run's JSON line (with its commit) to --out.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main():
  p = argparse.ArgumentParser(description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--commits", required=True, help="comma-separated commits, oldest first")
  p.add_argument("--modes", default="pre,lu")
  p.add_argument("--repeats", type=int, default=3)
  p.add_argument("--jit_compile", type=int, default=0)
  p.add_argument("--steps", type=int, default=20)
  p.add_argument("--out", default=None)
  a = p.parse_args()
  commits, modes = a.commits.split(","), a.modes.split(",")
  rows = []
  with tempfile.TemporaryDirectory() as tmp:
    trees = {}
    for c in commits:
      trees[c] = os.path.join(tmp, c)
      subprocess.run(["git", "-C", ROOT, "worktree", "add", "--detach", trees[c], c], check=True,
                     stdout=subprocess.DEVNULL)
    try:
      hub_dir = os.path.join(tmp, "locked_vit")

      def child(c, *flags):
        env = dict(os.environ, PYTHONPATH=trees[c])
        return subprocess.run([sys.executable, os.path.join(trees[c], "benchmarks", "bench_tiny.py"),
                               *flags], env=env, stdout=subprocess.PIPE, text=True, check=True,
                              cwd=trees[c]).stdout

      if "lu" in modes:
        child(commits[0], "--child=export", f"--hub_dir={hub_dir}")
      for r in range(a.repeats):
        for mode in modes:
          for c in commits:
            out = child(c, f"--child={mode}", f"--hub_dir={hub_dir}", f"--repeat_index={r}",
                        f"--jit_compile={a.jit_compile}", f"--steps={a.steps}")
            row = json.loads(out.strip().splitlines()[-1])
            row["commit"] = c
            rows.append(row)
            print(f"[bench_commits] repeat {r} {mode} {c}: {row['train_pairs_per_s']:.1f} pairs/s, "
                  f"peak RSS above import {row['train_peak_rss_minus_import_mb']:.0f} MB, "
                  f"other-CPU {row['train_other_cpu_util']:.2f}", flush=True)
    finally:
      for c in commits:
        subprocess.run(["git", "-C", ROOT, "worktree", "remove", "--force", trees[c]], check=False)
  if a.out:
    with open(a.out, "a") as f:
      f.writelines(json.dumps(x) + "\n" for x in rows)
  print("| mode | commit | runs | train pairs/s median (range) | peak RSS − import MB median "
        "(range) | last loss |\n|---|---|---|---|---|---|")
  for mode in modes:
    for c in commits:
      rs = [x for x in rows if x["mode"] == mode and x["commit"] == c]
      tp = [x["train_pairs_per_s"] for x in rs]
      mem = [x["train_peak_rss_minus_import_mb"] for x in rs]
      print(f"| {mode} | {c} | {len(rs)} | {statistics.median(tp):.1f} ({min(tp):.1f}–{max(tp):.1f}) "
            f"| {statistics.median(mem):.0f} ({min(mem):.0f}–{max(mem):.0f}) | "
            f"{rs[0]['loss_last']:.6f} |")


if __name__ == "__main__":
  main()
