"""Config → objects. The only library code that reads a config (besides the trainer)."""
import tf_keras

from lit_keras import towers
from lit_keras.layers.logit_scale import NO_DECAY_VARIABLE_NAMES
from lit_keras.models import LiTModel
from lit_keras.training import schedules


def build_image_tower(c, state):
  if state == towers.SCRATCH:
    return towers.ViTImageTower(image_size=c.image_size, name="image_tower", **c.vit)
  return towers.HubImageTower(c.handle, state=state, image_size=c.image_size,
                              value_range=tuple(c.value_range), output_key=c.get("output_key"),
                              name="image_tower")


def image_source(config):
  """What identifies a locked image tower's features: module and preprocessing."""
  c = config.image
  return {"handle": c.handle, "image_size": int(c.image_size),
          "value_range": [float(v) for v in c.value_range], "output_key": c.get("output_key"),
          "crop": "central", "crop_fraction": float(config.data.get("crop_fraction", 1.0))}


def build_tokenizer(c):
  """The from-scratch text tower's tokenizer (SentencePiece if a model is given, else WordPiece)."""
  if c.get("sentencepiece_model"):
    return towers.SentencePieceTokenizer(c.sentencepiece_model, seq_length=c.seq_length)
  return towers.WordPieceTokenizer(c.vocab, seq_length=c.seq_length,
                                   lower_case=c.get("lower_case", True))


def build_tokenize_fn(c, state):
  """strings → BERT inputs, for the input pipeline (a hub tower brings its preprocessor)."""
  if state == towers.SCRATCH:
    return build_tokenizer(c)
  return build_text_tower(c, state).tokenize


def build_text_tower(c, state):
  if state == towers.SCRATCH:
    return towers.BertTextTower(build_tokenizer(c), pooling=c.get("scratch_pooling", "cls"),
                                name="text_tower", **c.bert)
  return towers.HubBertTextTower(c.preprocess, c.encoder, state=state, pooling=c.pooling,
                                 seq_length=c.seq_length, name="text_tower")


def build_model(config, precomputed=None):
  """A `LiTModel` for `config.setting` (e.g. "Lu") from `config.image` and `config.text`.

  With pre-computed image embeddings (`config.precompute.enabled`, or `precomputed=True`) the
  image tower is a `PrecomputedImageTower` and no image model is loaded; `precomputed=False`
  re-assembles the same model with the real locked tower (for evaluation and export: the
  checkpoint holds no locked-tower weights, so it restores into either).
  """
  img_state, txt_state = towers.parse_setting(config.setting)
  if precomputed is None:
    precomputed = bool(config.get("precompute", {}).get("enabled", False))
  if precomputed:
    if img_state != towers.LOCKED:
      raise ValueError(f"pre-computed image embeddings need a locked image tower, not "
                       f"setting {config.setting!r}")
    image_tower = towers.PrecomputedImageTower(config.precompute.dim, source=image_source(config),
                                               name="image_tower")
  else:
    image_tower = build_image_tower(config.image, img_state)
  return LiTModel(image_tower,
                  build_text_tower(config.text, txt_state),
                  embed_dim=config.model.embed_dim,
                  head_hidden_dims=tuple(config.model.get("head_hidden_dims", ())),
                  use_bias=config.loss == "sigmoid", name="lit_model")


def build_optimizer(c, total_steps, lr_scale=1.0):
  """AdamW (paper: lr 1e-3, wd 1e-4; decoupled decay, none on the temperature/bias) or Adafactor
  (no weight decay), with linear warm-up then cosine/linear decay (`schedules.WarmupDecay`)."""
  schedule = schedules.WarmupDecay(c.lr, total_steps, c.warmup_steps, c.get("decay", "cosine"),
                                   scale=lr_scale)
  if c.name == "adamw":
    opt = tf_keras.optimizers.AdamW(learning_rate=schedule, weight_decay=c.weight_decay,
                                    beta_1=c.get("b1", 0.9), beta_2=c.get("b2", 0.999))
    opt.exclude_from_weight_decay(var_names=list(NO_DECAY_VARIABLE_NAMES))
  elif c.name == "adafactor":
    opt = tf_keras.optimizers.Adafactor(learning_rate=schedule)
  else:
    raise ValueError(f"Unknown optimizer {c.name!r}: expected 'adamw' or 'adafactor'")
  return opt
