"""The task: what a LiT run's config means, turned into objects (model, optimizers, inputs, loss,
evaluators). With the trainer, the only library code that reads a config; layers, towers and
models take explicit arguments.

    task = LiTTask(config).prepare()          # validates; pre-computes locked image embeddings
    model = task.build_model()
    dataset = task.build_inputs(input_context, start_step=0)

The config schema with its defaults is `configs/common.py`. `prepare` expects concrete paths and
handles (programs resolve dataset names and symbolic handles before, see `lit_keras_app`).
"""
import json
import os

from absl import logging
import ml_collections
import numpy as np
import tensorflow as tf
import tf_keras

from lit_keras import cache
from lit_keras import errors
from lit_keras import losses
from lit_keras import towers
from lit_keras.data import embeddings
from lit_keras.data import pipeline
from lit_keras import evaluation
from lit_keras.evaluation import evaluators
from lit_keras.layers.logit_scale import NO_DECAY_VARIABLE_NAMES
from lit_keras.models import LiTModel
from lit_keras.training import optimizers
from lit_keras.training import schedules

OPTIMIZERS = ("adamw", "adafactor")
CONFIG_FILE = "config.json"


def load_config(workdir):
  """The resolved config a run wrote into its workdir."""
  with tf.io.gfile.GFile(os.path.join(workdir, CONFIG_FILE), "r") as f:
    return ml_collections.ConfigDict(json.load(f))


def save_config(config, workdir):
  tf.io.gfile.makedirs(workdir)
  with tf.io.gfile.GFile(os.path.join(workdir, CONFIG_FILE), "w") as f:
    f.write(config.to_json_best_effort(indent=2))


class LiTTask:
  """A LiT run's config → its model, optimizers, input pipeline, loss and evaluators.

  Args:
    config: an ml_collections config of the `configs/common.py` schema, with concrete paths.
  """

  def __init__(self, config):
    self.config = config
    self._tokenize = None

  # --- Validation and preparation ------------------------------------------------------------
  @property
  def states(self):
    return towers.parse_setting(self.config.setting)

  def validate(self, num_replicas=1):
    """Raises ValueError (or FileNotFoundError) naming the first bad field."""
    c = self.config
    img_state, txt_state = self.states
    losses.get_loss(c.loss, c.get("loss_block_size") or None)
    chunk = c.get("chunk_size") or 0
    if chunk < 0:
      raise ValueError(f"config.chunk_size={chunk} must be positive (or 0: no chunks)")
    if c.get("recompute") and towers.SCRATCH not in (img_state, txt_state):
      raise ValueError(f"config.recompute applies to towers trained from scratch (a 'u' in the "
                       f"setting); {c.setting!r} has none (a TF-Hub tower is one opaque call)")
    if c.batch_size <= 0 or c.total_steps <= 0:
      raise ValueError("config.batch_size and config.total_steps must be positive")
    if c.batch_size % num_replicas:
      raise ValueError(f"config.batch_size={c.batch_size} is not divisible by the "
                       f"{num_replicas} replicas")
    if c.optim.name not in OPTIMIZERS:
      raise ValueError(f"config.optim.name={c.optim.name!r}: expected one of {OPTIMIZERS}")
    _check_path(c.image.handle, "config.image.handle", img_state != towers.SCRATCH)
    if txt_state == towers.SCRATCH:
      _check_path(c.text.get("sentencepiece_model") or c.text.vocab, "config.text.vocab", True)
    else:
      _check_path(c.text.preprocess, "config.text.preprocess", True)
      _check_path(c.text.encoder, "config.text.encoder", True)
    if c.precompute.enabled and img_state != towers.LOCKED:
      raise ValueError("config.precompute.enabled needs a locked image tower (setting 'L?')")
    if not c.data.train:
      raise ValueError("config.data.train is empty")
    # Raises naming the pattern if nothing matches, or if no record is usable.
    pipeline.require_a_usable_example(c.data.train)
    evaluators.build(self.eval_specs(), c.image.image_size)  # unknown types, classes, files
    return self

  def prepare(self, strategy=None, log=logging.info):
    """Validates, then (with `precompute.enabled`) runs the locked image tower once over the
    training set and the sets evaluated during training, the replicas of `strategy` sharing the
    work and the chief writing the files. Returns `self`, whose config now names the pre-computed
    embeddings (`precompute.dim`, `precompute.train`, `evals.*.precomputed` and
    `evals.*.precomputed_train`)."""
    self.validate()
    c = self.config
    if not c.precompute.enabled:
      return self
    c = self.config = c.copy_and_resolve_references()
    strategy = strategy or tf.distribute.get_strategy()
    embed_files, source = None, self.image_source()
    cache_dir = cache.root(c.get("cache_dir"))

    def run(file_pattern):
      nonlocal embed_files
      _, meta = embeddings.cached(source, file_pattern, cache_dir)
      if meta is None and embed_files is None:
        embed_files = image_file_embedder(source, strategy,
                                          jit_compile=c.get("jit_compile", False))
      out_dir, dim, _ = embeddings.precompute(embed_files, source, file_pattern, cache_dir,
                                              log=log, writer=strategy.extended.should_checkpoint)
      return embeddings.pattern(out_dir), dim

    with c.unlocked():
      c.precompute.train, c.precompute.dim = run(c.data.train)
      for spec in c.evals.values():
        if spec.get("during_training", True) and spec.get("data"):
          spec.precomputed, _ = run(spec.data)
          if spec.get("train_data"):
            spec.precomputed_train, _ = run(spec.train_data)
    return self

  # --- Towers and model ----------------------------------------------------------------------
  def image_source(self):
    """What identifies a locked image tower's features (`embeddings.image_source`)."""
    c = self.config
    return embeddings.image_source(c.image.handle, c.image.image_size, c.image.value_range,
                                   c.image.get("output_key"), c.data.get("crop_fraction", 1.0))

  def build_image_tower(self, state=None):
    c = self.config.image
    state = state or self.states[0]
    if state == towers.SCRATCH:
      return towers.ViTImageTower(image_size=c.image_size, name="image_tower",
                                  recompute=self.config.get("recompute", False), **c.vit)
    return towers.HubImageTower(c.handle, state=state, image_size=c.image_size,
                                value_range=tuple(c.value_range),
                                output_key=c.get("output_key") or None, name="image_tower")


  def build_tokenizer(self):
    """The from-scratch text tower's tokenizer (SentencePiece if a model is given)."""
    c = self.config.text
    if c.get("sentencepiece_model"):
      return towers.SentencePieceTokenizer(c.sentencepiece_model, seq_length=c.seq_length)
    return towers.WordPieceTokenizer(c.vocab, seq_length=c.seq_length,
                                     lower_case=c.get("lower_case", True))

  def build_text_tower(self, state=None):
    c = self.config.text
    state = state or self.states[1]
    if state == towers.SCRATCH:
      return towers.BertTextTower(self.build_tokenizer(), pooling=c.get("scratch_pooling", "cls"),
                                  name="text_tower", recompute=self.config.get("recompute", False),
                                  **c.bert)
    return towers.HubBertTextTower(c.preprocess, c.encoder, state=state, pooling=c.pooling,
                                   seq_length=c.seq_length, name="text_tower")

  def build_model(self, precomputed=None):
    """A `LiTModel` for `config.setting`.

    With pre-computed image embeddings (`precompute.enabled`, or `precomputed=True`) the image
    tower is a `PrecomputedImageTower` and no image model is loaded; `precomputed=False`
    re-assembles the same model with the real locked tower (for evaluation and export: the
    checkpoint holds no locked-tower weights, so it restores into either).
    """
    c = self.config
    if precomputed is None:
      precomputed = bool(c.precompute.enabled)
    if precomputed:
      if self.states[0] != towers.LOCKED:
        raise ValueError(f"pre-computed image embeddings need a locked image tower, not "
                         f"setting {c.setting!r}")
      image_tower = towers.PrecomputedImageTower(c.precompute.dim, source=self.image_source(),
                                                 name="image_tower")
    else:
      image_tower = self.build_image_tower()
    return LiTModel(image_tower, self.build_text_tower(), embed_dim=c.model.embed_dim,
                    head_hidden_dims=tuple(c.model.get("head_hidden_dims", ())),
                    use_bias=c.loss == "sigmoid", name="lit_model")

  # --- Optimization --------------------------------------------------------------------------
  def build_optimizer(self, lr_scale=1.0):
    """AdamW (paper: lr 1e-3, wd 1e-4; decoupled decay, none on the temperature and bias; the
    fused `optimizers.AdamW`) or Adafactor (no weight decay), on `schedules.warmup_decay`."""
    c = self.config.optim
    schedule = schedules.warmup_decay(c.lr * lr_scale, self.config.total_steps, c.warmup_steps,
                                      c.get("decay", "cosine"))
    if c.name == "adamw":
      opt = optimizers.AdamW(learning_rate=schedule, weight_decay=c.weight_decay,
                             beta_1=c.get("b1", 0.9), beta_2=c.get("b2", 0.999))
      opt.exclude_from_weight_decay(var_names=list(NO_DECAY_VARIABLE_NAMES))
    elif c.name == "adafactor":
      opt = tf_keras.optimizers.Adafactor(learning_rate=schedule)
    else:
      raise ValueError(f"Unknown optimizer {c.name!r}: expected one of {OPTIMIZERS}")
    return opt

  def build_optimizers(self):
    """(optimizer, image_optimizer or None): an unlocked image tower gets its own optimizer when
    it has a learning-rate multiplier or a delayed unlock."""
    img = self.config.image
    image_optimizer = None
    if self.states[0] != towers.LOCKED and (img.get("lr_mult", 1.0) != 1.0
                                            or img.get("unlock_at_step", 0)):
      image_optimizer = self.build_optimizer(lr_scale=img.get("lr_mult", 1.0))
    return self.build_optimizer(), image_optimizer

  def build_loss(self):
    """`(zimg, ztxt, logit_scale, logit_bias) -> (loss, metrics)` over the global batch (or,
    with `global_batch_loss=False`, each replica's own batch), in blocks of `loss_block_size`
    columns when that is set."""
    loss_fn = losses.get_loss(self.config.loss, self.config.get("loss_block_size") or None)
    if self.config.get("global_batch_loss", True) is False:
      return lambda *a: loss_fn(*a, global_batch=False)
    return loss_fn

  # --- Inputs and evaluation -----------------------------------------------------------------
  def tokenize_fn(self):
    """strings → BERT inputs, for the input pipeline (a hub text tower brings its own)."""
    if self._tokenize is None:
      # Built on first use, i.e. after the trainer has seeded TF: `tf.random.set_seed` drops
      # kernel-held resources such as a SentencePiece model created before it.
      if self.states[1] == towers.SCRATCH:
        fn = self.build_tokenizer()
      else:
        fn = self.build_text_tower().tokenize
      fn(tf.constant(["warm up"]))  # create its resources eagerly, not inside the map's trace
      self._tokenize = fn
    return self._tokenize

  def build_inputs(self, input_context=None, start_step=0):
    """This input pipeline's training dataset for `distribute_datasets_from_function`, positioned
    at `start_step` (`pipeline.train_dataset`: the same batches on every replica layout whose
    replica count divides `data.num_streams`)."""
    c = self.config
    ctx = input_context or tf.distribute.InputContext()
    pre = c.precompute.enabled
    per_replica = ctx.get_per_replica_batch_size(c.batch_size)
    return pipeline.train_dataset(
        c.precompute.train if pre else c.data.train, per_replica, c.image.image_size,
        self.tokenize_fn(), input_context=ctx, seed=c.seed,
        embedding_dim=c.precompute.dim if pre else None,
        skip_corrupt=c.data.get("skip_corrupt", False),
        shuffle_buffer=c.data.get("shuffle_buffer", 10_000),
        augment=c.data.get("augment", True), crop_fraction=c.data.get("crop_fraction", 1.0),
        num_streams=c.data.get("num_streams") or None, start_step=start_step,
        epoch_batches=c.data.get("epoch_batches", False))

  def eval_specs(self, during_training=False):
    """The config's evaluator specs ({name: dict}); with `during_training`, only those that run
    during training, reading pre-computed features when the run trains from them."""
    out = {}
    for name, spec in self.config.get("evals", {}).items():
      spec = dict(spec)
      if during_training and not spec.get("during_training", True):
        continue
      if not (during_training and self.config.precompute.enabled):
        spec["precomputed"] = spec["precomputed_train"] = ""
      spec["embedding_dim"] = self.config.precompute.dim
      out[name] = spec
    return out

  def build_evaluators(self, during_training=False):
    return evaluators.build(self.eval_specs(during_training), self.config.image.image_size,
                            self.config.data.get("crop_fraction", 1.0))


def image_file_embedder(source, strategy=None, batch_size=64, jit_compile=None):
  """`files → [float [n_i, D] per file]`: the locked image tower of `source`
  (`embeddings.image_source`) over the files' images (central crops), in one pass over all of
  them, the replicas of `strategy` sharing them (`sharded_map`)."""
  strategy = strategy or tf.distribute.get_strategy()
  with strategy.scope():
    tower = towers.HubImageTower(source["handle"], state=towers.LOCKED,
                                 image_size=source["image_size"],
                                 value_range=tuple(source["value_range"]),
                                 output_key=source.get("output_key"))
  size, crop = source["image_size"], source.get("crop_fraction", 1.0)

  def embed_files(files):
    files = list(files)
    stream = files[0] if len(files) == 1 else files  # a TFDS source comes alone
    counts = [int(pipeline.eval_examples(f).reduce(0, lambda n, _: n + 1)) for f in files]
    vecs = evaluation.sharded_map(
        lambda x: tower(x, training=False),
        lambda: pipeline.eval_examples(stream).map(lambda ex: ex["image"]), sum(counts),
        batch_size, prepare=lambda data: pipeline.eval_image(data, size, crop),
        strategy=strategy, jit_compile=jit_compile)
    if not sum(counts):
      return [np.zeros([0]) for _ in files]
    return np.split(np.asarray(vecs), np.cumsum(counts)[:-1])

  return embed_files


def _check_path(value, field, needed):
  """A local path must exist; an http(s) TF-Hub/Kaggle handle must download (or be cached)."""
  if not needed:
    return
  if not value:
    raise ValueError(f"{field} is empty but the setting needs it")
  if value.startswith(("http://", "https://")):
    import tensorflow_hub as hub  # pylint: disable=g-import-not-at-top
    try:
      hub.resolve(value)
    except (OSError, ValueError, tf.errors.OpError) as e:  # URLError is an OSError
      raise errors.HandleUnavailableError(
          f"{field}={value!r} cannot be fetched ({type(e).__name__}: {str(e)[:120]}). Offline? "
          "Download it where there is network (or point TFHUB_CACHE_DIR at a cache holding "
          f"it) and pass the local directory: --{field}=/path/to/model") from None
  elif "://" not in value and not tf.io.gfile.exists(value):
    raise errors.HandleUnavailableError(f"{field}={value!r} does not exist")
