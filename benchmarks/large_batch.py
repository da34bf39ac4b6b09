"""Peak memory and throughput of train.py at large global batches, chunked vs whole-batch.

Each point is one `train.py` process (the demo config unless --config is given) running a few
steps at global batch B, either whole-batch or with `chunk_size` and `loss_block_size`
(gradient caching and the blocked loss, docs/training.md). Reported per point: the process's
peak resident set (its own `ru_maxrss`, from `os.wait4`), the median examples/s of the steps
after the first (which includes tracing), and the exit state. A process whose resident set
passes --limit_gb is killed and reported as such (the machine has 24 GB).

  python benchmarks/large_batch.py --batches 1024,4096,16384,32768 --modes whole,chunked \
      --out benchmarks/results/large_batch_Lu.jsonl
  python benchmarks/large_batch.py --setting LU --batches 1024,4096 --chunk 256 \
      --out benchmarks/results/large_batch_LU.jsonl

Modes: `whole`, `chunked`, and either with `+recompute` (`config.recompute`: the from-scratch
towers recompute each transformer block in backprop), e.g. `--modes whole,whole+recompute`.
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EX_PER_S = re.compile(r"step (\d+)/\d+ .* ([\d.]+) ex/s")


def _rss_gb(pid):
  try:
    with open(f"/proc/{pid}/status") as f:
      for line in f:
        if line.startswith("VmRSS:"):
          return int(line.split()[1]) / 2**20
  except OSError:
    pass
  return 0.0


def run_point(config, setting, batch, mode, chunk, block, steps, limit_gb):
  workdir = tempfile.mkdtemp(prefix=f"large_batch_{batch}_{mode}_")
  cmd = [sys.executable, os.path.join(ROOT, "train.py"), f"--config={config}",
         f"--workdir={workdir}", f"--config.setting={setting}", f"--config.batch_size={batch}",
         f"--config.total_steps={steps}", "--config.steps_per_loop=1", "--config.log_every=1",
         f"--config.checkpoint_every={steps}", "--config.eval_every=0",
         "--config.optim.warmup_steps=1"]
  base, _, extra = mode.partition("+")
  if base not in ("whole", "chunked") or extra not in ("", "recompute"):
    raise ValueError(f"unknown mode {mode!r}")
  if base == "chunked":
    cmd += [f"--config.chunk_size={chunk}", f"--config.loss_block_size={block}"]
  if extra:
    cmd += ["--config.recompute=True"]
  env = dict(os.environ, TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="2")
  t0 = time.time()
  proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          env=env, cwd=ROOT)
  lines, killed = [], []

  def read():
    for line in proc.stdout:
      lines.append(line)

  reader = threading.Thread(target=read, daemon=True)
  reader.start()
  while True:  # wait4 reaps the child with its own rusage (peak resident set)
    pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
    if pid:
      break
    if _rss_gb(proc.pid) > limit_gb and not killed:
      proc.kill()
      killed.append(True)
    time.sleep(0.2)
  returncode = os.waitstatus_to_exitcode(status)
  proc.returncode = returncode
  reader.join()
  rates = [float(m.group(2)) for m in map(EX_PER_S.search, lines) if m and int(m.group(1)) > 1]
  return {"setting": setting, "batch": batch, "mode": base, "recompute": bool(extra),
          "chunk_size": chunk if base == "chunked" else None,
          "loss_block_size": block if base == "chunked" else None,
          "returncode": returncode, "killed_over_gb": limit_gb if killed else None,
          "peak_rss_gb": round(usage.ru_maxrss / 2**20, 2),
          "examples_per_s": statistics.median(rates) if rates else None,
          "wall_s": round(time.time() - t0, 1), "tail": "".join(lines[-3:])[-400:]}


def main():
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--config", default="configs/demo.py")
  p.add_argument("--setting", default="Lu")
  p.add_argument("--batches", default="1024,4096,16384,32768")
  p.add_argument("--modes", default="whole,chunked")
  p.add_argument("--chunk", type=int, default=1024)
  p.add_argument("--block", type=int, default=1024)
  p.add_argument("--steps", type=int, default=4)
  p.add_argument("--limit_gb", type=float, default=20.0)
  p.add_argument("--out", default="")
  args = p.parse_args()
  for batch in [int(b) for b in args.batches.split(",")]:
    for mode in args.modes.split(","):
      point = run_point(args.config, args.setting, batch, mode, args.chunk, args.block,
                        args.steps, args.limit_gb)
      print(json.dumps(point), flush=True)
      if args.out:
        with open(args.out, "a") as f:
          f.write(json.dumps(point) + "\n")


if __name__ == "__main__":
  main()
