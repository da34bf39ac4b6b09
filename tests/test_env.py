"""What importing lit_keras sets up before TensorFlow loads: Keras 2 and a pooled host allocator."""
import os
import subprocess
import sys

# Runs in a fresh process: imports lit_keras first, then allocates and frees a 4 MB tensor and
# prints what the host allocator's statistics say (only a pooling allocator keeps statistics).
CHILD = r"""
import lit_keras
import tensorflow as tf
import tf_keras
info = tf.config.experimental.get_memory_info
assert tf.keras.Model is tf_keras.Model, tf.keras
tf.ones([2])
try:
  before = info("CPU:0")["current"]
except ValueError as e:
  print("no-pool", e)
  raise SystemExit(0)
y = tf.fill([1000, 1000], 2.0)
held = info("CPU:0")["current"] - before
del y
print("pool", held, info("CPU:0")["current"] - before)
"""


def _run(**env):
  # oneDNN (on by default on CPUs with AVX-512) brings a pooling allocator of its own, whatever
  # TF_CPU_ALLOCATOR_USE_BFC says: turned off here, the host allocator is the one lit_keras picks.
  base = {k: v for k, v in os.environ.items()
          if k not in ("TF_CPU_ALLOCATOR_USE_BFC", "TF_USE_LEGACY_KERAS")}
  base["TF_ENABLE_ONEDNN_OPTS"] = "0"
  out = subprocess.run([sys.executable, "-c", CHILD], env=dict(base, **env), capture_output=True,
                       text=True, timeout=300, check=True)
  kind, rest = out.stdout.strip().splitlines()[-1].split(" ", 1)
  return kind, rest


def test_importing_lit_keras_pools_host_memory_and_pins_keras_2():
  kind, rest = _run()
  assert kind == "pool", rest
  held, after_free = rest.split()
  assert int(held) >= 1000 * 1000 * 4  # the tensor's block is counted while it lives...
  assert int(after_free) == 0  # ...and back in the pool when it is freed


def test_the_user_can_turn_the_pool_off():
  kind, message = _run(TF_CPU_ALLOCATOR_USE_BFC="false")
  assert kind == "no-pool"
  assert "Allocator stats not available" in message  # plain malloc keeps none
