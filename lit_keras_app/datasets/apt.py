"""Fetching Debian packages with the ordinary package client (`apt-get download`), once, into the
cache, unpacked with `dpkg-deb -x` (on the local disk: with a remote cache, under the system's
temporary directory, as `npm.fetch` does)."""
import glob
import os
import shutil
import subprocess
import tempfile

from lit_keras_app.datasets import npm

SourceMissingError = npm.SourceMissingError


def _run(cmd, cwd=None):
  return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)


def _download(packages, dest):
  """`apt-get download`s `packages` (["name=version", ...]) into `dest`; on empty package lists,
  `apt-get update` once (as root) and retries. Returns the .deb paths."""
  proc = _run(["apt-get", "download", *packages], cwd=dest)
  if proc.returncode and "Unable to locate package" in proc.stderr + proc.stdout:
    if os.geteuid() != 0:
      raise SourceMissingError(
          f"apt cannot find {' '.join(packages)}: its package lists look empty. Run "
          "`sudo apt-get update` once, or install the packages and point the builder at them "
          "(see the dataset's documentation).")
    print("[apt] apt-get update (the package lists are empty)", flush=True)
    update = _run(["apt-get", "update"])
    if update.returncode:
      raise SourceMissingError(f"`apt-get update` failed:\n{update.stderr[-2000:]}")
    proc = _run(["apt-get", "download", *packages], cwd=dest)
  if proc.returncode:
    raise SourceMissingError(f"`apt-get download {' '.join(packages)}` failed (is the Debian "
                             f"archive reachable?):\n{proc.stderr[-2000:]}")
  return sorted(glob.glob(os.path.join(dest, "*.deb")))


def fetch(name, packages, cache_dir):
  """Downloads and unpacks Debian `packages` (["name=version", ...]) into the cache once; returns
  the directory they were unpacked into (the root of their file tree: `usr/share/...`)."""
  if "://" in cache_dir:  # dpkg-deb unpacks onto the local disk
    cache_dir = os.path.join(tempfile.gettempdir(), "lit_keras_cache")
  dest = os.path.join(cache_dir, "apt", name)
  if os.path.exists(os.path.join(dest, ".complete")):
    return dest
  for tool in ("apt-get", "dpkg-deb"):
    if shutil.which(tool) is None:
      raise SourceMissingError(f"`{tool}` is needed to fetch {' '.join(packages)} (a Debian or "
                               "Ubuntu system); elsewhere, unpack the packages yourself and point "
                               "the builder at them (see the dataset's documentation).")
  staging = dest + ".tmp"
  shutil.rmtree(staging, ignore_errors=True)
  os.makedirs(staging)
  with tempfile.TemporaryDirectory() as tmp:
    print(f"[apt] apt-get download {' '.join(packages)}", flush=True)
    for deb in _download(packages, tmp):
      proc = _run(["dpkg-deb", "-x", deb, staging])
      if proc.returncode:
        raise SourceMissingError(f"`dpkg-deb -x {os.path.basename(deb)}` failed:\n"
                                 f"{proc.stderr[-2000:]}")
  open(os.path.join(staging, ".complete"), "w").close()
  shutil.rmtree(dest, ignore_errors=True)
  os.replace(staging, dest)
  return dest
