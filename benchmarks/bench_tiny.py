"""lit_keras vs open_clip on the shared "bench-tiny" work shape, interleaved in one run.

    .venv/bin/python benchmarks/bench_tiny.py --repeats 3 --out benchmarks/results/bench_tiny

The shape of the open_clip peer harness (a directory given by --peer or $LIT_KERAS_PEER_OPEN_CLIP,
see docs/benchmarks.md): 64×64×3 random images;
ViT patch 8, width 192, depth 4, heads 3, MLP 768; text transformer width 256, depth 4, heads 4,
MLP 1024, 16 tokens, vocab 8192; embeddings 128; batch 128; fp32; AdamW lr 1e-3, betas
0.9/0.999, eps 1e-8, weight decay 0.01; 2 threads; 3 warm-up + 20 timed steps; four distinct
pre-generated random batches, cycled; a fresh process per (impl, mode, repeat).

Our modes, built from the library's own pieces (`LiTModel`, `make_train_step`, the softmax
loss over the global batch):
  lu   image tower locked: a random tf-models-official ViT exported as a TF-Hub feature-vector
       SavedModel and loaded by `HubImageTower` (the way a locked tower enters lit_keras), its
       forward every step; BERT text tower (`BertTextTower`, tfm `BertEncoder`) + heads train.
  uu   both towers trainable (`ViTImageTower` + `BertTextTower`).
  pre  pre-computed image embeddings (`PrecomputedImageTower`, random [128, 192] features):
       text tower + heads only — LiT's pre-computation, without the image model in memory.

The driver (no --child) counts FLOPs (analytic and TF's graph profiler), measures the fp32
matmul peak of TF and torch (the peer's matmul_peak.py), then for every repeat runs ours lu (XLA
and graph mode), peer lu, ours uu (both), peer uu, ours pre (both) in fresh processes, then an
RSS-by-stage profile of our pre and lu. `--precisions fp32,bf16` runs every one of them in both
precisions, side by side: ours under the mixed_bfloat16 policy (bf16 compute, fp32 weights, loss
and optimizer; the locked ViT exported under the same policy), the peer with its own
`--precision amp_bf16` (torch autocast); the summary compares each bf16 loss curve with fp32's.
It writes ours.jsonl / peer.jsonl (fp32), ours_bf16.jsonl / peer_bf16.jsonl, matmul.jsonl,
memory.jsonl, flops.json and summary.md into --out, and prints the peer's summarize.py over both
implementations and our table: FLOPs, fractions of the matmul peak, the targets. Each JSON line
has the peer's keys (impl, mode, train_pairs_per_s, ...).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import rss  # benchmarks/rss.py, next to this script

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The peer harness and its Python: flags, or these environment variables (empty: ours only).
DEFAULT_PEER = os.environ.get("LIT_KERAS_PEER_OPEN_CLIP", "")
DEFAULT_PEER_PYTHON = os.environ.get("LIT_KERAS_PEER_PYTHON", "")
MODES = ("lu", "uu", "pre")
PRECISIONS = ("fp32", "bf16")
PEER_PRECISION = {"fp32": "fp32", "bf16": "amp_bf16"}


def parse_args(argv=None):
  p = argparse.ArgumentParser(description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  a = p.add_argument
  a("--image_size", type=int, default=64)
  a("--patch_size", type=int, default=8)
  a("--vision_width", type=int, default=192)
  a("--vision_layers", type=int, default=4)
  a("--vision_heads", type=int, default=3)
  a("--vision_mlp", type=int, default=768)
  a("--text_width", type=int, default=256)
  a("--text_layers", type=int, default=4)
  a("--text_heads", type=int, default=4)
  a("--text_mlp", type=int, default=1024)
  a("--context_length", type=int, default=16)
  a("--vocab_size", type=int, default=8192)
  a("--embed_dim", type=int, default=128)
  a("--batch", type=int, default=128)
  a("--lr", type=float, default=1e-3)
  a("--weight_decay", type=float, default=0.01)
  a("--threads", type=int, default=2)
  a("--warmup", type=int, default=3)
  a("--steps", type=int, default=20)
  a("--data_batches", type=int, default=4)
  a("--seed", type=int, default=0)
  a("--jit_compile", type=int, default=1, help="child: XLA-compile the train step and encoders")
  a("--precision", default="fp32", choices=PRECISIONS,
    help="child: fp32, or bf16 (our mixed_bfloat16 policy; the peer's --precision amp_bf16)")
  a("--precisions", default="fp32",
    help="driver: fp32 and/or bf16; every (impl, mode) runs in each, interleaved, and the "
         "summary checks each bf16 loss curve against fp32's on the same seed and data")
  a("--jit_variants", default="1,0",
    help="driver: run our modes with jit_compile=1 (impl lit_keras) and/or 0 (lit_keras-nojit)")
  a("--modes", default="lu,uu,pre")
  a("--repeats", type=int, default=3)
  a("--out", default=os.path.join(ROOT, "benchmarks", "results", "bench_tiny"))
  a("--peer", default=DEFAULT_PEER, help="the open_clip peer harness directory ('' = ours only)")
  a("--peer_python", default=DEFAULT_PEER_PYTHON)
  a("--child", default=None, help=argparse.SUPPRESS)
  a("--repeat_index", type=int, default=0, help=argparse.SUPPRESS)
  a("--hub_dir", default=None, help=argparse.SUPPRESS)
  return p.parse_args(argv)


# ------------------------------------------------------------------------------------------
# FLOPs (matmul / conv / attention only; 1 multiply-add = 2 FLOPs), the peer's definitions.
# ------------------------------------------------------------------------------------------
def analytic_flops(a):
  def layer(tokens, width, mlp):
    linear = 2 * tokens * (4 * width * width + 2 * width * mlp)
    attention = 2 * 2 * tokens * tokens * width
    return linear + attention

  patches = (a.image_size // a.patch_size) ** 2
  image = (2 * patches * 3 * a.patch_size ** 2 * a.vision_width
           + a.vision_layers * layer(patches + 1, a.vision_width, a.vision_mlp)
           + 2 * a.vision_width * a.embed_dim)
  text = (a.text_layers * layer(a.context_length, a.text_width, a.text_mlp)
          + 2 * a.text_width * a.embed_dim)
  loss = 2 * 2 * a.batch * a.embed_dim
  head = 2 * a.vision_width * a.embed_dim  # the image head alone (trained in lu and pre)
  return {
      "image_fwd_per_pair": image,
      "text_fwd_per_pair": text,
      "loss_fwd_per_pair": loss,
      "lu_train_per_pair": image + 3 * text + 3 * loss,
      "uu_train_per_pair": 3 * image + 3 * text + 3 * loss,
      # pre: the image tower never runs; its head still trains (forward + weight gradient).
      "pre_train_per_pair": 2 * head + 3 * text + 3 * loss,
  }


# ------------------------------------------------------------------------------------------
# Child: one (mode, repeat) of ours in a fresh process.
# ------------------------------------------------------------------------------------------
def _proc_stat_busy():
  with open("/proc/stat") as f:
    v = [int(x) for x in f.readline().split()[1:]]
  user, nice, system, _, _, irq, softirq, steal = (v + [0] * 8)[:8]
  hz = os.sysconf("SC_CLK_TCK")
  return (user + nice + system + irq + softirq) / hz, steal / hz


class CpuWindow:
  """CPU share used by other processes during a timed window (the peer's measure)."""

  def __enter__(self):
    self.t0, self.s0, self.o0 = time.perf_counter(), _proc_stat_busy(), os.times()
    return self

  def __exit__(self, *exc):
    self.wall = time.perf_counter() - self.t0
    s1, o1 = _proc_stat_busy(), os.times()
    self.own = (o1.user - self.o0.user) + (o1.system - self.o0.system)
    self.other = max(0.0, s1[0] - self.s0[0] - self.own) / (self.wall * (os.cpu_count() or 1))
    self.steal = s1[1] - self.s0[1]
    return False


def _vit_kwargs(a):
  return {"image_size": a.image_size, "patch_size": a.patch_size, "hidden_size": a.vision_width,
              "num_layers": a.vision_layers, "num_heads": a.vision_heads, "mlp_dim": a.vision_mlp}


def _apply_precision(a):
  """--precision=bf16: the trainer's `mixed_precision=True` (bf16 compute, fp32 weights)."""
  import tf_keras  # pylint: disable=g-import-not-at-top
  if a.precision == "bf16":
    tf_keras.mixed_precision.set_global_policy("mixed_bfloat16")


def export_locked_vit(a, export_dir):
  """A random-init tfm ViT of the bench shape as a TF-Hub image feature vector ([-1, 1] input).

  With --precision=bf16 it is built under the mixed_bfloat16 policy, so the SavedModel computes
  in bfloat16 behind float32 signatures (what a user exports for bf16 inference, and what the
  peer's autocast does to its locked tower).
  """
  import lit_keras  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import  (Keras 2)
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  import tf_keras  # pylint: disable=g-import-not-at-top

  from lit_keras import towers  # pylint: disable=g-import-not-at-top
  from lit_keras.export import tfhub_format  # pylint: disable=g-import-not-at-top
  tf.keras.utils.set_random_seed(a.seed)
  _apply_precision(a)
  vit = towers.ViTImageTower(value_range=(-1.0, 1.0), **_vit_kwargs(a))
  images = tf_keras.Input([a.image_size, a.image_size, 3])
  features = tf.reshape(vit.backbone(images)["pre_logits"], [-1, a.vision_width])
  features = tf.cast(features, tf.float32)
  tfhub_format.export_image_feature_vector(tf_keras.Model(images, features), export_dir)


def _vocab_file(a, directory):
  path = os.path.join(directory, "vocab.txt")
  tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"] + [f"tok{i}" for i in range(a.vocab_size - 4)]
  with open(path, "w") as f:
    f.write("\n".join(tokens) + "\n")
  return path


def build_step(a, mode, jit):
  """The bench's threads and seed, our model for `mode`, its batches and the library's train
  step with AdamW: (model, batches, train_step)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  from lit_keras import losses  # pylint: disable=g-import-not-at-top
  from lit_keras.training import step as step_lib  # pylint: disable=g-import-not-at-top
  tf.config.threading.set_intra_op_parallelism_threads(a.threads)
  tf.config.threading.set_inter_op_parallelism_threads(1)
  tf.keras.utils.set_random_seed(a.seed)
  _apply_precision(a)
  model, batches = build(a, mode)
  model(batches[0])
  return model, batches, step_lib.make_train_step(model, adamw(a), losses.get_loss("softmax"),
                                                  jit_compile=jit)


def adamw(a):
  """The bench's AdamW: the library's (`lit_keras.training.AdamW`, tf_keras's AdamW with the
  fused dense update), the peer's hyper-parameters."""
  from lit_keras import training  # pylint: disable=g-import-not-at-top
  return training.AdamW(learning_rate=a.lr, weight_decay=a.weight_decay, beta_1=0.9,
                        beta_2=0.999, epsilon=1e-8)


def build(a, mode):
  """Our model for `mode` at the bench shape, and `a.data_batches` random batches."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  from lit_keras import models, towers  # pylint: disable=g-import-not-at-top
  with tempfile.TemporaryDirectory() as tmp:
    tokenizer = towers.WordPieceTokenizer(_vocab_file(a, tmp), seq_length=a.context_length)
  text_tower = towers.BertTextTower(
      tokenizer, hidden_size=a.text_width, num_layers=a.text_layers, num_heads=a.text_heads,
      inner_dim=a.text_mlp, pooling="cls")
  if mode == "lu":
    image_tower = towers.HubImageTower(a.hub_dir, state="L", image_size=a.image_size,
                                       value_range=(-1.0, 1.0))
  elif mode == "uu":
    image_tower = towers.ViTImageTower(**_vit_kwargs(a))
  elif mode == "pre":
    image_tower = towers.PrecomputedImageTower(a.vision_width)
  else:
    raise SystemExit(f"unknown mode {mode!r}; expected one of {MODES}")
  model = models.LiTModel(image_tower, text_tower, embed_dim=a.embed_dim)

  rng = np.random.default_rng(a.seed + 1)
  b, length = a.batch, a.context_length

  def image_batch():
    if mode == "pre":
      return tf.constant(rng.standard_normal((b, a.vision_width)), tf.float32)
    return tf.constant(rng.uniform(size=(b, a.image_size, a.image_size, 3)), tf.float32)

  def text_batch():
    ids = rng.integers(1, a.vocab_size, size=(b, length))
    return {"input_word_ids": tf.constant(ids, tf.int32),
            "input_mask": tf.ones([b, length], tf.int32),
            "input_type_ids": tf.zeros([b, length], tf.int32)}

  batches = [{"image": image_batch(), "text": text_batch()} for _ in range(a.data_batches)]
  return model, batches


def run_child(a, mode):
  t_import = time.perf_counter()
  import lit_keras  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import  (Keras 2)
  sys.path.insert(0, ROOT)
  import numpy as np  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  import tf_keras  # pylint: disable=g-import-not-at-top

  from lit_keras import losses  # pylint: disable=g-import-not-at-top
  from lit_keras.training import step as step_lib  # pylint: disable=g-import-not-at-top
  import_s = time.perf_counter() - t_import
  rss_after_import = rss.rss_mb()

  jit = bool(a.jit_compile)
  model, batches, train_step = build_step(a, mode, jit)
  b = a.batch
  rss_after_build = rss.rss_mb()

  image_vars = model.image_tower.weights
  image_before = [v.numpy().copy() for v in image_vars]
  text_probe = model.text_tower.encoder.get_embedding_table().numpy().copy()
  scale_init = float(model.logit_scale.log_scale.numpy())

  losses_seen, times = [], []
  for i in range(a.warmup):
    losses_seen.append(float(train_step(batches[i % len(batches)])["loss"]))
    if i == 0:
      rss_after_first_step, peak_after_first_step = rss.rss_mb(), rss.peak_rss_mb()
  with CpuWindow() as win:
    for i in range(a.warmup, a.warmup + a.steps):
      t0 = time.perf_counter()
      loss = float(train_step(batches[i % len(batches)])["loss"])  # float() waits for the step
      times.append(time.perf_counter() - t0)
      losses_seen.append(loss)
  peak_train = rss.peak_rss_mb()

  image_changed = any(not np.array_equal(x, v.numpy()) for x, v in zip(image_before, image_vars))
  text_changed = not np.array_equal(text_probe,
                                    model.text_tower.encoder.get_embedding_table().numpy())
  params = lambda vs: int(sum(np.prod(v.shape) for v in vs))

  res = {
      "bench": "bench-tiny", "impl": "lit_keras" if jit else "lit_keras-nojit", "mode": mode,
      "repeat": a.repeat_index, "precision": a.precision,
      "batch": b, "warmup_steps": a.warmup, "timed_steps": a.steps,
      "train_pairs_per_s": b * len(times) / sum(times),
      "train_pairs_per_s_at_median": b / statistics.median(times),
      "train_step_median_s": statistics.median(times),
      "train_step_min_s": min(times), "train_step_max_s": max(times),
      "train_step_mean_s": statistics.fmean(times),
      "train_pairs_per_s_at_min": b / min(times),
      "train_own_cpu_util": win.own / (win.wall * (os.cpu_count() or 1)),
      "train_other_cpu_util": win.other, "train_steal_s": win.steal,
      "loss_first": losses_seen[0], "loss_last": losses_seen[-1], "losses": losses_seen,
      "logit_scale_init": scale_init,
      "image_tower_changed": image_changed,
      # Whether any image-tower variable is trainable, i.e. could receive a gradient in the step.
      "image_tower_has_grad": bool(model.image_tower.trainable_variables),
      "text_tower_changed": text_changed,
      "params_total": params(model.weights),
      "params_image_tower": params(model.image_tower.weights),
      "params_trainable": params(model.trainable_variables),
      "peak_rss_mb": peak_train, "rss_after_import_mb": rss_after_import,
      "rss_after_build_mb": rss_after_build,
      # The first step traces (and with jit_compile, XLA-compiles) the step function.
      "rss_after_first_step_mb": rss_after_first_step,
      "peak_rss_after_first_step_mb": peak_after_first_step,
  }

  encode_image = tf.function(lambda x: model.encode_image(x), jit_compile=jit)
  encode_text = tf.function(lambda x: model.encode_text(x), jit_compile=jit)

  def time_fn(fn, key):
    out = []
    for i in range(a.warmup + a.steps):
      t0 = time.perf_counter()
      fn(batches[i % len(batches)][key]).numpy()
      if i >= a.warmup:
        out.append(time.perf_counter() - t0)
    return out

  with CpuWindow() as iwin:
    ti = time_fn(encode_image, "image") if mode != "pre" else None
    tt = time_fn(encode_text, "text")
  if ti:
    res.update(infer_image_pairs_per_s=b * len(ti) / sum(ti),
               infer_image_step_median_s=statistics.median(ti))
  res.update(infer_text_pairs_per_s=b * len(tt) / sum(tt),
             infer_text_step_median_s=statistics.median(tt),
             infer_other_cpu_util=iwin.other)
  res["peak_rss_mb_end"] = rss.peak_rss_mb()
  res["train_peak_rss_minus_import_mb"] = peak_train - rss_after_import
  res.update({
      "threads": a.threads, "jit_compile": jit,
      "dtype": "float32" if a.precision == "fp32" else "mixed_bfloat16",
      "optimizer": {"name": "lit_keras.training.AdamW", "lr": a.lr, "betas": [0.9, 0.999],
                    "eps": 1e-8, "weight_decay": a.weight_decay},
      "loss": "lit_keras.losses.softmax_contrastive_loss (learnable temperature, init log 10)",
      "image_tower": type(model.image_tower).__name__,
      "text_tower": "BertTextTower (tfm BertEncoder, bidirectional, CLS pooling)",
      "tensorflow": tf.__version__, "nproc": os.cpu_count(),
      "loadavg_1m_end": os.getloadavg()[0], "import_s": import_s, "time_unix": time.time(),
  })
  return res


def graph_flops(a):
  """FLOPs per pair counted by TF's graph profiler on our own traced graphs (not run).

  Counts every op with registered statistics (Einsum/MatMul/Conv and the elementwise ops,
  optimizer updates included). uu and pre are traced in full; a hub SavedModel's forward is an
  opaque function call to the profiler, so lu is counted as pre + the ViT's traced forward.
  """
  import lit_keras  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import  (Keras 2)
  sys.path.insert(0, ROOT)
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  from lit_keras import losses  # pylint: disable=g-import-not-at-top
  from lit_keras.training import step as step_lib  # pylint: disable=g-import-not-at-top

  def count(fn, *args):
    options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    graph = fn.get_concrete_function(*args).graph
    return tf.compat.v1.profiler.profile(graph, options=options).total_float_ops / a.batch

  out = {}
  for mode in ("uu", "pre"):
    model, batches = build(a, mode)
    batch = batches[0]
    model(batch)
    step_lib.make_train_step(model, adamw(a), losses.get_loss("softmax"))  # compiles the model
    # The replica step itself: the train step's outer function only calls it (strategy.run),
    # and the profiler does not look inside function calls.
    out[f"{mode}_train_per_pair"] = count(tf.function(model.train_step_values), batch)
    if mode == "uu":
      out["image_fwd_per_pair"] = count(
          tf.function(lambda x, m=model: m.image_tower(x, training=False)), batch["image"])
      out["text_fwd_per_pair"] = count(
          tf.function(lambda x, m=model: m.encode_text(x)), batch["text"])
  out["lu_train_per_pair"] = out["pre_train_per_pair"] + out["image_fwd_per_pair"]
  return out


def memory_profile(a, mode):
  """Where the RSS above import goes: RSS after each stage, each stage's function run once.

  The stages share one process, so each number is what that stage adds on top of the ones
  before (its traced graph, compiled code and the tensors it keeps).
  """
  import lit_keras  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import  (Keras 2)
  sys.path.insert(0, ROOT)
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  from lit_keras import losses  # pylint: disable=g-import-not-at-top
  from lit_keras.training import step as step_lib  # pylint: disable=g-import-not-at-top
  start = rss.rss_mb()
  tf.config.threading.set_intra_op_parallelism_threads(a.threads)
  tf.config.threading.set_inter_op_parallelism_threads(1)
  jit = bool(a.jit_compile)
  stages = {}
  mark = lambda name: stages.__setitem__(name, round(rss.rss_mb() - start, 1))
  model, batches = build(a, mode)
  model(batches[0])
  mark("model built, called once eagerly (hub module loaded)")
  loss_fn = losses.get_loss("softmax")

  def forward(batch):
    out = model(batch, training=True)
    return loss_fn(out["zimg"], out["ztxt"], out["logit_scale"])[0]

  def forward_backward(batch):
    with tf.GradientTape(watch_accessed_variables=False) as tape:
      tape.watch(model.trainable_variables)
      loss = forward(batch)
    return tape.gradient(loss, model.trainable_variables)

  tf.function(forward, jit_compile=jit)(batches[0])
  mark("+ forward function (to the loss; traced, compiled, run once)")
  tf.function(forward_backward, jit_compile=jit)(batches[0])
  mark("+ forward+backward function (traced, compiled, run once)")
  step = step_lib.make_train_step(model, adamw(a), loss_fn, jit_compile=jit)
  for i in range(a.warmup + a.steps - 1):
    step(batches[i % len(batches)])["loss"].numpy()
  # TensorFlow's host allocator (a pooling one, lit_keras's default): what it holds between
  # steps (weights, optimizer slots, batches) and the most it holds within one step.
  info = lambda: tf.config.experimental.get_memory_info("CPU:0")
  tf.config.experimental.reset_memory_stats("CPU:0")
  between = info()["current"]
  step(batches[0])["loss"].numpy()
  mark("+ the train step with AdamW (warm-up + timed steps)")
  return {"impl": "lit_keras" if jit else "lit_keras-nojit", "mode": mode,
          "memory_stages_mb": stages, "peak_rss_minus_import_mb": rss.peak_rss_mb() - start,
          "allocator_between_steps_mb": round(between / 2**20, 1),
          "allocator_step_peak_above_between_mb": round((info()["peak"] - between) / 2**20, 1)}


# ------------------------------------------------------------------------------------------
# Driver.
# ------------------------------------------------------------------------------------------
def _shape_flags_for_child(a):
  keep = ("image_size", "patch_size", "vision_width", "vision_layers", "vision_heads",
          "vision_mlp", "text_width", "text_layers", "text_heads", "text_mlp", "context_length",
          "vocab_size", "embed_dim", "batch", "lr", "weight_decay", "threads", "warmup", "steps",
          "data_batches", "seed")
  return [f"--{k}={getattr(a, k)}" for k in keep]


def _peer_flags(a):
  return ["--image-size", str(a.image_size), "--patch-size", str(a.patch_size),
          "--vision-width", str(a.vision_width), "--vision-layers", str(a.vision_layers),
          "--vision-heads", str(a.vision_heads),
          "--vision-mlp-ratio", str(a.vision_mlp / a.vision_width),
          "--text-width", str(a.text_width), "--text-layers", str(a.text_layers),
          "--text-heads", str(a.text_heads), "--text-mlp", str(a.text_mlp),
          "--context-length", str(a.context_length), "--vocab-size", str(a.vocab_size),
          "--embed-dim", str(a.embed_dim), "--batch", str(a.batch), "--lr", str(a.lr),
          "--weight-decay", str(a.weight_decay), "--threads", str(a.threads),
          "--warmup", str(a.warmup), "--steps", str(a.steps),
          "--data-batches", str(a.data_batches), "--seed", str(a.seed)]


def _run_json(cmd, label):
  print(f"[bench_tiny] {label}", file=sys.stderr, flush=True)
  t0 = time.time()
  proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, check=False)
  lines = [json.loads(x) for x in proc.stdout.splitlines() if x.startswith("{")]
  if proc.returncode != 0 or not lines:
    raise SystemExit(f"[bench_tiny] {label} failed (rc {proc.returncode}): {' '.join(cmd)}")
  for r in lines:
    if "train_pairs_per_s" in r:
      print(f"[bench_tiny]   {r['impl']} {r['mode']}: {r['train_pairs_per_s']:.1f} pairs/s, "
            f"median step {r['train_step_median_s']:.3f} s, other-CPU "
            f"{r['train_other_cpu_util']:.2f} ({time.time() - t0:.0f} s)", file=sys.stderr,
            flush=True)
  return lines


def _median_range(values):
  return statistics.median(values), min(values), max(values)


def precision_of(row):
  """"fp32" or "bf16" for one of our rows or the peer's (whose `dtype` is "amp_bf16" in bf16)."""
  if "precision" in row:
    return row["precision"]
  return "bf16" if row.get("dtype") == "amp_bf16" else "fp32"


def summarize(ours, peer, matmul, flops, a_batch):
  """Our table: medians (ranges), GFLOP/s, fraction of each framework's fp32 matmul peak, the
  performance targets, and each bf16 loss curve against fp32's."""
  peak = {}
  for r in matmul:
    peak.setdefault(r["framework"], []).append(r["gflops_median"])
  peak = {k: statistics.median(v) for k, v in peak.items()}
  rows, med = [], {}
  impls = sorted({r["impl"] for r in ours}) + ["open_clip"]
  precisions = [p for p in PRECISIONS if any(precision_of(r) == p for r in ours + peer)]
  for prec in precisions:
    for impl in impls:
      for mode in MODES:
        rs = [r for r in ours + peer
              if r["mode"] == mode and r["impl"] == impl and precision_of(r) == prec]
        if not rs:
          continue
        tp = _median_range([r["train_pairs_per_s"] for r in rs])
        st = statistics.median(r["train_step_median_s"] for r in rs)
        mem = _median_range([r["train_peak_rss_minus_import_mb"] for r in rs])
        gflops = tp[0] * flops[f"{mode}_train_per_pair"] / 1e9
        fw = "torch" if impl == "open_clip" else "tf"
        img = [r["infer_image_pairs_per_s"] for r in rs if "infer_image_pairs_per_s" in r]
        txt = [r["infer_text_pairs_per_s"] for r in rs if "infer_text_pairs_per_s" in r]
        med[(impl, prec, mode)] = {"pairs": tp[0], "mem": mem[0], "step": st, "gflops": gflops,
                                   "img": statistics.median(img) if img else None}
        fmt = lambda v: f"{statistics.median(v):.0f}" if v else "–"
        frac = (f"{gflops / peak[fw]:.2f} ({fw} {peak[fw]:.0f})"
                if fw in peak and prec == "fp32" else "–")
        rows.append(
            f"| {impl} | {prec} | {mode} | {len(rs)} | {tp[0]:.1f} ({tp[1]:.1f}–{tp[2]:.1f}) | "
            f"{st:.3f} | {mem[0]:.0f} ({mem[1]:.0f}–{mem[2]:.0f}) | {gflops:.1f} | {frac} | "
            f"{fmt(img)} | {fmt(txt)} |")
  lines = [
      ("| impl | precision | mode | runs | train pairs/s median (range) | median step s | "
       "peak RSS − import MB median (range) | GFLOP/s | fraction of fp32 matmul peak (GFLOP/s) | "
       "image enc pairs/s | text enc pairs/s |"),
      "|---|---|---|---|---|---|---|---|---|---|---|", *rows, ""]
  checks = []

  def check(name, ok, detail):
    checks.append(f"- {'MET' if ok else 'MISSED'}: {name} — {detail}")

  for prec in precisions:
    peer_m = lambda m, prec=prec: med.get(("open_clip", prec, m))
    for impl in impls[:-1]:
      ours_m = lambda m, impl=impl, prec=prec: med.get((impl, prec, m))
      for mode in ("lu", "uu"):
        if ours_m(mode) and peer_m(mode):
          r = ours_m(mode)["pairs"] / peer_m(mode)["pairs"]
          check(f"{impl} {prec} {mode} ≥ 1.25× open_clip {mode}", r >= 1.25, f"{r:.2f}×")
          r = ours_m(mode)["mem"] / peer_m(mode)["mem"]
          check(f"{impl} {prec} {mode} peak RSS above import ≤ 1.5× open_clip's", r <= 1.5,
                f"{r:.2f}× ({ours_m(mode)['mem']:.0f} vs {peer_m(mode)['mem']:.0f} MB)")
      if ours_m("pre") and peer_m("lu"):
        r = ours_m("pre")["pairs"] / peer_m("lu")["pairs"]
        check(f"{impl} {prec} pre ≥ 2.5× open_clip lu", r >= 2.5, f"{r:.2f}×")
      if ours_m("pre") and ours_m("lu"):
        r = ours_m("pre")["mem"] / ours_m("lu")["mem"]
        check(f"{impl} {prec} pre RSS above import ≤ 60% of its lu", r <= 0.6, f"{100 * r:.0f}%")
      for mode in MODES if prec == "fp32" and "tf" in peak else ():
        if ours_m(mode):
          r = ours_m(mode)["gflops"] / peak["tf"]
          check(f"{impl} {prec} {mode} ≥ 0.75 of TF's matmul peak", r >= 0.75, f"{r:.2f}")
      if ours_m("lu") and ours_m("pre") and ours_m("lu")["img"]:
        # No image backward in lu: its step ≈ the image forward + the pre step (text fwd/bwd).
        fwd = a_batch / ours_m("lu")["img"]
        parts = fwd + ours_m("pre")["step"]
        check(f"{impl} {prec} lu step ≈ image forward + pre step (no image backward)",
              ours_m("lu")["step"] <= 1.1 * parts,
              f"{ours_m('lu')['step']:.3f} s vs {fwd:.3f} + {ours_m('pre')['step']:.3f} = "
              f"{parts:.3f} s; an image backward would add ≈ {2 * fwd:.3f} s")
  lines += ["Targets (medians of this run):", *checks, "",
            "matmul peak (2048² fp32, median GFLOP/s): " +
            ", ".join(f"{k} {v:.1f}" for k, v in sorted(peak.items()))]
  if "bf16" in precisions and "fp32" in precisions:
    lines += ["", "bf16 against fp32 (same seed, same batches; speed = ratio of median pairs/s; "
              "loss = largest |bf16 − fp32| / fp32 over every step of every repeat, or the last "
              "step where only that is recorded):"]
    for impl in impls:
      for mode in MODES:
        fp, bf = med.get((impl, "fp32", mode)), med.get((impl, "bf16", mode))
        if not (fp and bf):
          continue
        pairs = {}
        for r in ours + peer:
          if r["impl"] == impl and r["mode"] == mode:
            pairs.setdefault(r["repeat"], {})[precision_of(r)] = r
        devs = []
        for two in pairs.values():
          if len(two) == 2:
            a_, b_ = two["fp32"], two["bf16"]
            curve = zip(a_["losses"], b_["losses"]) if "losses" in a_ and "losses" in b_ else [
                (a_["loss_last"], b_["loss_last"])]
            devs += [abs(y - x) / abs(x) for x, y in curve]
        lines.append(f"- {impl} {mode}: {bf['pairs'] / fp['pairs']:.2f}× the fp32 speed, "
                     f"peak RSS above import {bf['mem']:.0f} vs {fp['mem']:.0f} MB, loss within "
                     + (f"{100 * max(devs):.2f}%" if devs else "– (no repeat in both)"))
  return "\n".join(lines)


def main():
  a = parse_args()
  if a.child == "flops":
    print(json.dumps(graph_flops(a)), flush=True)
    return
  if a.child and a.child.startswith("memory:"):
    print(json.dumps(memory_profile(a, a.child.split(":")[1])), flush=True)
    return
  if a.child:
    print(json.dumps(run_child(a, a.child)), flush=True)
    return
  modes = [m for m in a.modes.split(",") if m]
  precisions = [p for p in a.precisions.split(",") if p]
  if set(precisions) - set(PRECISIONS):
    raise SystemExit(f"--precisions {a.precisions!r}: expected some of {PRECISIONS}")
  jit_variants = [int(j) for j in a.jit_variants.split(",") if j]
  os.makedirs(a.out, exist_ok=True)
  me = [sys.executable, os.path.abspath(__file__)]
  peer = a.peer if a.peer and os.path.isdir(a.peer) else None
  if a.peer and not peer:
    raise SystemExit(f"peer harness not found at {a.peer} (pass --peer='' for ours only)")
  if peer and not os.path.exists(a.peer_python):
    raise SystemExit(f"peer venv missing: {a.peer_python} (run `bash {peer}/setup.sh`)")
  flops = analytic_flops(a)
  measured = _run_json(me + ["--child=flops"] + _shape_flags_for_child(a),
                       "FLOPs per pair from TF's graph profiler")[0]
  with open(os.path.join(a.out, "flops.json"), "w") as f:
    json.dump({"bench": "bench-tiny", "batch": a.batch, "analytic": flops,
               "tf_graph_profiler": measured}, f, indent=1)

  matmul = []
  for fw, py in (("tf", sys.executable), ("torch", a.peer_python)):
    if peer and py:  # the peer's matmul_peak.py measures both frameworks' peaks
      matmul += _run_json([py, os.path.join(peer, "matmul_peak.py"),
                           "--framework", fw, "--threads", str(a.threads)],
                          f"matmul peak ({fw})")
  with tempfile.TemporaryDirectory() as tmp:
    hub_dirs = {prec: os.path.join(tmp, f"locked_vit_{prec}") for prec in precisions}
    for prec in precisions if "lu" in modes else ():
      print(f"[bench_tiny] exporting the random ViT as a TF-Hub feature vector ({prec})",
            file=sys.stderr)
      subprocess.run(me + ["--child=export", f"--hub_dir={hub_dirs[prec]}",
                           f"--precision={prec}"] + _shape_flags_for_child(a), check=True)
    ours, theirs = [], []
    for r in range(a.repeats):
      for mode in modes:
        for prec in precisions:
          for jit in jit_variants:
            ours += _run_json(
                me + [f"--child={mode}", f"--repeat_index={r}", f"--hub_dir={hub_dirs[prec]}",
                      f"--jit_compile={jit}", f"--precision={prec}"] + _shape_flags_for_child(a),
                f"repeat {r}: lit_keras {mode} {prec} jit_compile={jit}")
          if peer and mode in ("lu", "uu"):
            cmd = [a.peer_python, os.path.join(peer, "bench.py"), "--modes", mode, "--_child",
                   "--_repeat", str(r), "--precision", PEER_PRECISION[prec]] + _peer_flags(a)
            theirs += _run_json(cmd, f"repeat {r}: open_clip {mode} {prec}")
    memory = []  # fp32 only
    for mode in ("pre", "lu") if "fp32" in precisions else ():
      for jit in jit_variants:
        if mode in modes:
          memory += _run_json(me + [f"--child=memory:{mode}", f"--hub_dir={hub_dirs['fp32']}",
                                    f"--jit_compile={jit}"] + _shape_flags_for_child(a),
                              f"memory profile: lit_keras {mode} jit_compile={jit}")
  files = [("matmul", matmul), ("memory", memory)]
  for prec in precisions:  # ours.jsonl / peer.jsonl for fp32, ours_bf16.jsonl / peer_bf16.jsonl
    suffix = "" if prec == "fp32" else f"_{prec}"
    files += [(f"ours{suffix}", [x for x in ours if precision_of(x) == prec]),
              (f"peer{suffix}", [x for x in theirs if precision_of(x) == prec])]
  for name, rows in files:
    with open(os.path.join(a.out, f"{name}.jsonl"), "w") as f:
      f.writelines(json.dumps(x) + "\n" for x in rows)
  for prec in precisions if peer else ():
    suffix = "" if prec == "fp32" else f"_{prec}"
    print(f"\n== the peer's summarize.py over both ({prec}) ==")
    sys.stdout.flush()
    subprocess.run([sys.executable, os.path.join(peer, "summarize.py"),
                    os.path.join(a.out, f"ours{suffix}.jsonl"),
                    os.path.join(a.out, f"peer{suffix}.jsonl")], check=False)
  table = summarize(ours, theirs, matmul, flops, a.batch)
  table += "\n\nRSS above import by stage (MB, cumulative; `memory.jsonl`):\n" + "\n".join(
      f"- {m['impl']} {m['mode']}: " + "; ".join(f"{k}: {v:.0f}"
                                                 for k, v in m["memory_stages_mb"].items())
      for m in memory)
  with open(os.path.join(a.out, "summary.md"), "w") as f:
    f.write(table + "\n")
  print("\n" + table)


if __name__ == "__main__":
  if "--child=export" in sys.argv:
    args = parse_args([x for x in sys.argv[1:] if x != "--child=export"])
    export_locked_vit(args, args.hub_dir)
  else:
    main()
