"""Config → objects. The only library code that reads a config (besides the trainer)."""
import tf_keras

from lit_keras import towers
from lit_keras.layers.logit_scale import NO_DECAY_VARIABLE_NAMES
from lit_keras.models import LiTModel


def build_image_tower(c, state):
  if state == towers.SCRATCH:
    return towers.ViTImageTower(image_size=c.image_size, name="image_tower", **c.vit)
  return towers.HubImageTower(c.handle, state=state, image_size=c.image_size,
                              value_range=tuple(c.value_range), output_key=c.get("output_key"),
                              name="image_tower")


def build_text_tower(c, state):
  if state == towers.SCRATCH:
    if c.get("sentencepiece_model"):
      tok = towers.SentencePieceTokenizer(c.sentencepiece_model, seq_length=c.seq_length)
    else:
      tok = towers.WordPieceTokenizer(c.vocab, seq_length=c.seq_length,
                                      lower_case=c.get("lower_case", True))
    return towers.BertTextTower(tok, pooling=c.get("scratch_pooling", "cls"), name="text_tower",
                                **c.bert)
  return towers.HubBertTextTower(c.preprocess, c.encoder, state=state, pooling=c.pooling,
                                 seq_length=c.seq_length, name="text_tower")


def build_model(config):
  """A `LiTModel` for `config.setting` (e.g. "Lu") from `config.image` and `config.text`."""
  img_state, txt_state = towers.parse_setting(config.setting)
  return LiTModel(build_image_tower(config.image, img_state),
                  build_text_tower(config.text, txt_state),
                  embed_dim=config.model.embed_dim,
                  head_hidden_dims=tuple(config.model.get("head_hidden_dims", ())),
                  use_bias=config.loss == "sigmoid", name="lit_model")


def build_optimizer(c, total_steps):
  """AdamW (paper: lr 1e-3, wd 1e-4) with linear warm-up then cosine decay; no decay on t."""
  schedule = tf_keras.optimizers.schedules.CosineDecay(
      initial_learning_rate=0.0 if c.warmup_steps else c.lr,
      decay_steps=max(1, total_steps - c.warmup_steps), alpha=0.0,
      warmup_target=c.lr if c.warmup_steps else None, warmup_steps=c.warmup_steps)
  if c.name == "adamw":
    opt = tf_keras.optimizers.AdamW(learning_rate=schedule, weight_decay=c.weight_decay)
    opt.exclude_from_weight_decay(var_names=list(NO_DECAY_VARIABLE_NAMES))
  elif c.name == "adafactor":
    opt = tf_keras.optimizers.Adafactor(learning_rate=schedule)
  else:
    raise ValueError(f"Unknown optimizer {c.name!r}: expected 'adamw' or 'adafactor'")
  return opt
