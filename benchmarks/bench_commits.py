"""One bench_tiny mode at several commits of this repository, interleaved: before/after figures.

    .venv/bin/python benchmarks/bench_commits.py --commits 811d4a1,bb11934,9b9950c \
        --modes pre,lu --repeats 3 --out benchmarks/results/bench_commits.jsonl
    .venv/bin/python benchmarks/bench_commits.py --commits e5b2e66,721526b --modes pre \
        --repeats 2 --profile --out benchmarks/results/bench_commits_profile.jsonl

Each commit is checked out into a temporary git worktree and each (repeat, mode, commit) runs
bench_tiny's child there, in a fresh process, with that worktree's `lit_keras` first on the path
(this venv's packages otherwise). The child is the one `bench_tiny.py` runs (graph mode unless
--jit_compile=1, fp32, the bench-tiny shape); `lu` loads a locked ViT exported once, by the
first commit's child. Prints the median pairs/s and peak RSS above import per (mode, commit), and
appends every run's JSON line (with its commit) to --out.

With --profile each run is `benchmarks/profile_step.py` instead (the same model and step, its
ops timed by TensorFlow's profiler): the summary is each commit's median op time per step by
op type, for the types whose time differs between the commits — a change's effect on the ops
it touches, which a few percent of whole-step time on a noisy machine would hide.
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
  p.add_argument("--profile", action="store_true", help="run profile_step.py: op time by type")
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

      def child(c, script, *flags):
        env = dict(os.environ, PYTHONPATH=trees[c])
        return subprocess.run([sys.executable, os.path.join(trees[c], "benchmarks", script),
                               *flags], env=env, stdout=subprocess.PIPE, text=True, check=True,
                              cwd=trees[c]).stdout

      if "lu" in modes:
        child(commits[0], "bench_tiny.py", "--child=export", f"--hub_dir={hub_dir}")
      for r in range(a.repeats):
        for mode in modes:
          for c in commits:
            if a.profile:
              # profile_step.py appends to --out: a file of its own for each run.
              out_json = os.path.join(tmp, f"profile_{r}_{mode}_{c}.json")
              child(c, "profile_step.py", f"--mode={mode}", f"--hub_dir={hub_dir}",
                    f"--steps={a.steps}", f"--out={out_json}")
              with open(out_json) as f:
                row = dict(json.load(f), repeat=r, commit=c)
              print(f"[bench_commits] repeat {r} {mode} {c}: step {row['step_s']:.3f} s, op time "
                    f"{row['ops_s']:.3f} s", flush=True)
            else:
              out = child(c, "bench_tiny.py", f"--child={mode}", f"--hub_dir={hub_dir}",
                          f"--repeat_index={r}", f"--jit_compile={a.jit_compile}",
                          f"--steps={a.steps}")
              row = dict(json.loads(out.strip().splitlines()[-1]), commit=c)
              print(f"[bench_commits] repeat {r} {mode} {c}: {row['train_pairs_per_s']:.1f} "
                    f"pairs/s, peak RSS above import {row['train_peak_rss_minus_import_mb']:.0f} "
                    f"MB, other-CPU {row['train_other_cpu_util']:.2f}", flush=True)
            rows.append(row)
    finally:
      for c in commits:
        subprocess.run(["git", "-C", ROOT, "worktree", "remove", "--force", trees[c]], check=False)
  if a.out:
    with open(a.out, "a") as f:
      f.writelines(json.dumps(x) + "\n" for x in rows)
  if a.profile:
    _print_profiles(rows, modes, commits)
    return
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


def _print_profiles(rows, modes, commits, min_diff_ms=2.0):
  """Per mode: the median step time and op time per commit, then the median ms per step (and
  calls per step) of each op type whose median differs by at least `min_diff_ms` between
  two commits."""
  med = lambda xs: statistics.median(xs) if xs else 0.0
  for mode in modes:
    by_commit = {c: [x for x in rows if x["mode"] == mode and x["commit"] == c] for c in commits}
    print(f"\n{mode}: | | " + " | ".join(commits) + " |\n|---|" + "---|" * len(commits))
    print("| step s (median) | " + " | ".join(f"{med([x['step_s'] for x in by_commit[c]]):.3f}"
                                          for c in commits) + " |")
    print("| op time s (median) | " + " | ".join(f"{med([x['ops_s'] for x in by_commit[c]]):.3f}"
                                              for c in commits) + " |")
    types = sorted({t for x in rows if x["mode"] == mode for t in x["by_type_ms"]})
    ms = {t: {c: med([x["by_type_ms"].get(t, 0.0) for x in by_commit[c]]) for c in commits}
          for t in types}
    for t in sorted(types, key=lambda t: -max(ms[t].values())):
      if max(ms[t].values()) - min(ms[t].values()) >= min_diff_ms:
        calls = {c: by_commit[c][0]["calls_per_step"].get(t, 0) for c in commits}
        print(f"| {t} ms (calls) | " + " | ".join(f"{ms[t][c]:.1f} ({calls[c]})"
                                                for c in commits) + " |")


if __name__ == "__main__":
  main()
