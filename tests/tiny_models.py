"""Tiny but real models, built and saved as SavedModels for the tests (no network)."""
import numpy as np
import tf_keras

from lit_keras.export import tfhub_format

IMAGE_SIZE = 16
IMAGE_FEATURES = 16

DIGIT_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
VOCAB = (["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
         + ["a", "an", "the", "photo", "picture", "image", "of", "digit", "number", "handwritten",
            "small", "blurry", "cat", "dog", "espresso", "cup", "coffee", ".", ",", "!", "##s",
            "##ing", "ca", "##t"]
         + DIGIT_WORDS)


def write_vocab(path, tokens=VOCAB):
  with open(path, "w", encoding="utf-8") as f:
    f.write("\n".join(tokens) + "\n")
  return path


def image_model(image_size=IMAGE_SIZE, features=IMAGE_FEATURES, seed=0):
  """Conv + BatchNorm + ReLU ×2 + global average pool: images in [0, 1] → [b, features]."""
  tf_keras.utils.set_random_seed(seed)
  x = inp = tf_keras.Input([image_size, image_size, 3])
  for width, stride in ((8, 2), (features, 1)):
    x = tf_keras.layers.Conv2D(width, 3, strides=stride, padding="same", use_bias=False)(x)
    x = tf_keras.layers.BatchNormalization()(x)
    x = tf_keras.layers.ReLU()(x)
  x = tf_keras.layers.GlobalAveragePooling2D()(x)
  model = tf_keras.Model(inp, x, name="tiny_image_fv")
  # Non-trivial BatchNorm statistics, so that frozen vs training-mode BN gives different outputs.
  rng = np.random.default_rng(seed)
  for layer in model.layers:
    if isinstance(layer, tf_keras.layers.BatchNormalization):
      n = layer.moving_mean.shape[0]
      layer.moving_mean.assign(rng.normal(0.0, 0.1, n).astype("float32"))
      layer.moving_variance.assign(rng.uniform(0.5, 2.0, n).astype("float32"))
  return model


def build_image_module(path, **kwargs):
  return tfhub_format.export_image_feature_vector(image_model(**kwargs), path)


def bert_encoder_config(vocab_size=len(VOCAB), hidden=16, layers=2, heads=2, inner=32):
  from official.nlp.configs import encoders  # pylint: disable=g-import-not-at-top
  return encoders.EncoderConfig(type="bert", bert=encoders.BertEncoderConfig(
      vocab_size=vocab_size, hidden_size=hidden, num_layers=layers, num_attention_heads=heads,
      intermediate_size=inner, max_position_embeddings=32, type_vocab_size=2,
      dropout_rate=0.0, attention_dropout_rate=0.0))


def build_bert_pair(export_dir, vocab_file, seq_length=16, seed=0):
  from official.nlp.configs import encoders  # pylint: disable=g-import-not-at-top
  tf_keras.utils.set_random_seed(seed)
  config = bert_encoder_config()
  encoder = encoders.build_encoder(config)
  return tfhub_format.export_bert_pair(config, encoder, export_dir, vocab_file=vocab_file,
                                       do_lower_case=True, seq_length=seq_length)


def scratch_text_tower(vocab_file, seq_length=16, name="text_tower", num_layers=1,
                       recompute=False):
  from lit_keras import towers  # pylint: disable=g-import-not-at-top
  tok = towers.WordPieceTokenizer(vocab_file, seq_length=seq_length)
  return towers.BertTextTower(tok, hidden_size=16, num_layers=num_layers, num_heads=2,
                              inner_dim=32, recompute=recompute, name=name)


def scratch_image_tower(name="image_tower", num_layers=1, recompute=False):
  from lit_keras import towers  # pylint: disable=g-import-not-at-top
  return towers.ViTImageTower(image_size=IMAGE_SIZE, patch_size=4, hidden_size=16,
                              num_layers=num_layers, num_heads=2, mlp_dim=32, recompute=recompute,
                              name=name)


def lit_model(setting, image_module, vocab_file, bert_pair=None, use_bias=False, seed=0,
              embed_dim=8, num_layers=1, recompute=False):
  """A tiny LiTModel for a two-letter setting: hub towers for L/U, scratch towers for u."""
  from lit_keras import towers  # pylint: disable=g-import-not-at-top
  from lit_keras.models import LiTModel  # pylint: disable=g-import-not-at-top
  tf_keras.utils.set_random_seed(seed)
  img_state, txt_state = towers.parse_setting(setting)
  if img_state == "u":
    image_tower = scratch_image_tower(num_layers=num_layers, recompute=recompute)
  else:
    image_tower = towers.HubImageTower(image_module, state=img_state, image_size=IMAGE_SIZE,
                                       name="image_tower")
  if txt_state == "u":
    text_tower = scratch_text_tower(vocab_file, num_layers=num_layers, recompute=recompute)
  else:
    text_tower = towers.HubBertTextTower(*bert_pair, state=txt_state, pooling="mean",
                                         name="text_tower")
  return LiTModel(image_tower, text_tower, embed_dim=embed_dim, use_bias=use_bias)


def random_batch(batch, vocab_file, seed=0, tokenize=True):
  """Real-shaped inputs: images in [0, 1] and captions built from the vocabulary."""
  from lit_keras import towers  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(seed)
  images = rng.uniform(size=(batch, IMAGE_SIZE, IMAGE_SIZE, 3)).astype(np.float32)
  words = VOCAB[5:]
  captions = [" ".join(rng.choice(words, size=rng.integers(1, 8))) for _ in range(batch)]
  if not tokenize:
    return {"image": images, "text": np.array(captions)}
  tok = towers.WordPieceTokenizer(vocab_file, seq_length=16)
  return {"image": images, "text": {k: v.numpy() for k, v in tok(captions).items()}}
