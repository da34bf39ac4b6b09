"""The full config schema with defaults; each experiment file overrides what it needs.

Fields that name files accept concrete paths (local, `gs://`, TF-Hub handles) or, resolved by the
programs (`lit_keras_app.resolve`), `ports:NAME/PART` (a ported pretrained tower) and
`DATASET:ASSET` (a file a registered dataset derives, e.g. `digits:vocab`).
"""
import ml_collections


def evaluator(type, dataset="", split="", data="", classes="", templates="",  # pylint: disable=redefined-builtin
              during_training=True, train_split="", train_data="", shots=(1, 5, 10, 25),
              seeds=3, l2_reg=2.0 ** 10, representations=("embedding", "features")):
  """One entry of `config.evals` (see `lit_keras.evaluation.evaluators`).

  Args:
    type: "retrieval", "zero_shot" or "fewshot".
    dataset, split: a registered dataset and its split (the programs fill `data`), or
    data: a set of your own: a TFRecord glob, or a TFDS source `tfds:NAME[/CONFIG]:SPLIT
      [@DATA_DIR]` (empty: the evaluator is off until you set it).
    classes, templates: zero-shot class list and prompt templates (a registered name such as
      "imagenet1k" / "clip", or a file); default: the dataset's (a TFDS set's label names).
    during_training: also run every `eval_every` steps of training (from pre-computed image
      embeddings when the run trains from them); always run by evaluate.py.
    train_split / train_data: `fewshot`: the labelled set its shots are drawn from (a split of
      `dataset`, or a glob / TFDS source); `data` is the test set.
    shots, seeds, l2_reg, representations: `fewshot`: images per class, draws, ridge penalty,
      and which image representations are probed ("embedding", "features").
  """
  return ml_collections.ConfigDict(dict(
      type=type, dataset=dataset, split=split, data=data, data_dir="", classes=classes,
      templates=templates, during_training=during_training, precomputed="",
      train_split=train_split, train_data=train_data, precomputed_train="",
      shots=tuple(shots), seeds=seeds, l2_reg=float(l2_reg),
      representations=tuple(representations)))


def base_config():
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.setting = "Lu"          # image tower letter, then text tower letter (L / U / u)
  c.dataset = ""            # a registered dataset (digits, emoji, ...), several joined by "+"
                            # (they train together), or "": your data.train
  c.loss = "softmax"        # softmax | sigmoid
  c.global_batch_loss = True  # False: the per-replica loss the paper compares against
  c.loss_block_size = 0     # >0: the loss in blocks of this many columns, no [b, B] logits
  c.chunk_size = 0          # >0: each replica's batch embedded this many rows at a time with
                            # the exact global gradient (gradient caching; docs/training.md)
  c.recompute = False       # from-scratch towers recompute each transformer block's forward
                            # pass in backprop instead of keeping its activations
  c.deterministic = False
  c.mixed_precision = False  # bfloat16 compute; loss and temperature stay float32
  c.jit_compile = False     # XLA-compile the train step (docs/benchmarks.md: faster with the
                            # image tower in the loop on CPU; TPUs always compile)
  c.cache_dir = ""          # default $LIT_KERAS_CACHE or ~/.cache/lit_keras

  c.data = ml_collections.ConfigDict()
  c.data.dir = ""           # where the dataset is built (default: <cache>/data/<dataset>)
  c.data.train = ""         # glob(s) of TFRecord shards, comma-separated (lit_keras.data.schema)
  c.data.train_split = "train"  # with a dataset and an empty data.train
  c.data.augment = True     # Inception crop; False: central crop
  c.data.crop_fraction = 1.0
  c.data.shuffle_buffer = 10_000
  c.data.skip_corrupt = False
  c.data.num_streams = 0    # data split into this many streams (0: one per replica); a multiple
                            # of every replica count you use gives them identical batches
  c.data.epoch_batches = False  # True: no batch spans two epochs (none holds an example twice;
                                # each epoch's remainder is dropped)

  c.image = ml_collections.ConfigDict()
  c.image.handle = ""       # TF-Hub handle / Kaggle URL / local SavedModel
  c.image.image_size = 224
  c.image.value_range = (0.0, 1.0)
  c.image.output_key = ""
  c.image.lr_mult = 1.0     # learning-rate multiplier of an unlocked image tower
  c.image.unlock_at_step = 0  # delayed unlocking: keep a "U" image tower frozen this long
  c.image.vit = dict(patch_size=16, hidden_size=768, num_layers=12, num_heads=12, mlp_dim=3072)

  c.text = ml_collections.ConfigDict()
  c.text.preprocess = ""    # TF-Hub BERT preprocessor (L / U)
  c.text.encoder = ""       # TF-Hub BERT encoder (L / U)
  c.text.pooling = "pooled"
  c.text.vocab = ""         # WordPiece vocab for a from-scratch text tower (u)
  c.text.sentencepiece_model = ""
  c.text.lower_case = True
  c.text.seq_length = 16
  c.text.scratch_pooling = "cls"
  c.text.bert = dict(hidden_size=768, num_layers=12, num_heads=12, inner_dim=3072)

  c.model = ml_collections.ConfigDict()
  c.model.embed_dim = 768
  c.model.head_hidden_dims = ()

  c.precompute = ml_collections.ConfigDict()
  c.precompute.enabled = False  # train from pre-computed locked image embeddings
  c.precompute.dim = 0          # filled in by the task (LiTTask.prepare)
  c.precompute.train = ""       # filled in by the task (LiTTask.prepare)

  c.evals = ml_collections.ConfigDict()  # NAME = evaluator(...); run by evaluate.py and training

  c.optim = ml_collections.ConfigDict()
  c.optim.name = "adamw"    # adamw | adafactor
  c.optim.lr = 1e-3
  c.optim.weight_decay = 1e-4
  c.optim.warmup_steps = 0
  c.optim.decay = "cosine"  # cosine | linear | constant
  c.optim.clip_grad_norm = 1.0
  c.optim.b1 = 0.9
  c.optim.b2 = 0.999

  c.batch_size = 256
  c.total_steps = 1000
  c.steps_per_loop = 10     # steps in one tf.function call (a tf.while_loop): checkpoints,
                            # evaluation and the NaN/SIGTERM checks happen between loops
  c.log_every = 50
  c.checkpoint_every = 500
  c.eval_every = 0
  return c
