"""Process memory for the benchmarks: resident set now, and the process-lifetime peak (MB)."""
import resource


def rss_mb():
  """Current resident set size (VmRSS) of this process in MB."""
  with open("/proc/self/status") as f:
    for line in f:
      if line.startswith("VmRSS:"):
        return int(line.split()[1]) / 1024.0
  return float("nan")


def peak_rss_mb():
  """Peak resident set size of this process so far (ru_maxrss, KiB on Linux) in MB."""
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
