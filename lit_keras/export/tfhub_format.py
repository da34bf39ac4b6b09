"""Write towers in exactly the TF-Hub interfaces that `lit_keras.towers` load.

- `export_image_feature_vector`: the TF2 hub image convention — float images `[b, H, W, 3]` in
  the module's value range → pooled features `[b, D]`; reloads in `hub.KerasLayer` frozen or
  trainable (the `training` argument is kept, so BatchNorm freezes when locked).
- `export_bert_pair`: a BERT preprocess + encoder pair through tf-models-official's
  `export_tfhub_lib`, the same code that produced the public tfhub.dev BERT models.
- `export_image_tower` / `export_text_tower`: any lit_keras tower — trained from scratch,
  fine-tuned or locked — in those interfaces, so that it loads back as `HubImageTower` /
  `HubBertTextTower` (frozen or trainable) in lit_keras or in any TF-Hub user's code.
"""
import os
import tempfile

import tensorflow as tf
import tf_keras
from official.nlp.modeling.layers import text_layers
from official.nlp.tools import export_tfhub_lib

from lit_keras.towers import text as text_towers


class _ImageFeatureVector(tf.__internal__.tracking.AutoTrackable):
  """TF-Hub's reusable SavedModel interface of an image model: `__call__(images, training)`,
  `variables`, `trainable_variables`, `regularization_losses`. Only these are saved, not the
  Keras model's layers: the forward pass is one graph function (oneDNN fuses across what were
  layer boundaries, `docs/benchmarks.md`), and loading restores it instead of a function per
  layer.
  """

  def __init__(self, model):
    if model.losses:
      raise ValueError(f"{model.name} has {len(model.losses)} regularization losses; the image "
                       "feature-vector export does not carry them")
    # Lists of variables, not the model: the model's layers are not saved.
    self.variables = list(model.variables)
    self.trainable_variables = list(model.trainable_variables)
    self.regularization_losses = []
    self.__call__ = tf.function(lambda images, training=False: model(images, training=training))
    spec = tf.TensorSpec([None] + list(model.input_shape[1:]), tf.float32)
    for training in (False, True):
      self.__call__.get_concrete_function(spec, training)


def export_image_feature_vector(model, export_dir):
  """Saves a tf_keras image model (images → [b, D] features) as a TF2 hub feature vector: a
  reusable SavedModel (`hub.KerasLayer` loads it frozen or trainable; `training=True` runs the
  model in training mode, e.g. BatchNorm on batch statistics, updating its moving averages)."""
  if not isinstance(model, tf_keras.Model):
    raise TypeError(f"expected a tf_keras.Model, got {type(model).__name__}")
  tf.saved_model.save(_ImageFeatureVector(model), export_dir)
  return export_dir


def export_bert_pair(encoder_config, encoder, export_dir, *, vocab_file=None,
                     sp_model_file=None, do_lower_case=True, seq_length=128):
  """Exports `encoder` (a tfm `BertEncoder`) as `<export_dir>/preprocess` + `<export_dir>/encoder`.

  Args:
    encoder_config: the `official.nlp.configs.encoders.EncoderConfig` that builds `encoder`
      (`encoders.build_encoder(encoder_config)`); tfm rebuilds the encoder from it.
    encoder: the encoder whose weights to export.
    export_dir: output directory; gets `preprocess/` and `encoder/` SavedModels.
    vocab_file / sp_model_file: the WordPiece vocab or the SentencePiece model (exactly one).
    do_lower_case: whether the preprocessor lower-cases.
    seq_length: the preprocessor's default sequence length.

  Returns:
    (preprocess_dir, encoder_dir).
  """
  preprocess_dir = os.path.join(export_dir, "preprocess")
  encoder_dir = os.path.join(export_dir, "encoder")
  with tempfile.TemporaryDirectory() as tmp:
    ckpt = tf.train.Checkpoint(encoder=encoder).save(os.path.join(tmp, "ckpt"))
    export_tfhub_lib.export_model(
        encoder_dir, encoder_config=encoder_config, model_checkpoint_path=ckpt,
        with_mlm=False, vocab_file=vocab_file, sp_model_file=sp_model_file,
        do_lower_case=do_lower_case if vocab_file else None)
  export_tfhub_lib.export_preprocessing(
      preprocess_dir, vocab_file=vocab_file, sp_model_file=sp_model_file,
      do_lower_case=do_lower_case, tokenize_with_offsets=False, default_seq_length=seq_length)
  return preprocess_dir, encoder_dir



def export_image_tower(tower, export_dir):
  """Saves an image tower as a TF2 hub image feature vector (float [b, s, s, 3] in [0, 1] →
  [b, D]; `s` = `tower.image_size`). The tower's own value range is applied inside, so the
  export loads as `HubImageTower(export_dir, image_size=s)` with the default range [0, 1].
  Returns `export_dir`."""
  images = tf_keras.Input([tower.image_size, tower.image_size, 3], name="images")
  return export_image_feature_vector(tf_keras.Model(images, tower(images)), export_dir)


class _Tokenize(tf.Module):
  """strings → ragged token ids, with `get_special_tokens_dict()` (the TF-Hub interface)."""

  def __init__(self, holder, pieces, start_id, end_id):
    super().__init__()
    self._holder = holder  # tracked, so that the tokenizer's resources are saved
    self.__call__ = tf.function(pieces, input_signature=[tf.TensorSpec([None], tf.string)])
    self.get_special_tokens_dict = tf.Module()
    self.get_special_tokens_dict.__call__ = tf.function(
        lambda: {"start_of_sequence_id": tf.constant(start_id, tf.int32),
                 "end_of_segment_id": tf.constant(end_id, tf.int32),
                 "padding_id": tf.constant(0, tf.int32)}, input_signature=[])


class _BertPreprocessor(tf.Module):
  """The TF-Hub BERT preprocessor interface of a lit_keras text tower: callable on strings
  (→ the packed BERT inputs), `tokenize` (→ ragged token ids) and `bert_pack_inputs` (tfm's
  packing, `seq_length` overridable)."""

  def __init__(self, tower):
    super().__init__()
    holder, pieces, start_id, end_id, seq_length = tower.preprocessing()
    pack = text_layers.BertPackInputs(seq_length, start_of_sequence_id=start_id,
                                      end_of_segment_id=end_id, padding_id=0)
    self.bert_pack_inputs = export_tfhub_lib.BertPackInputsSavedModelWrapper(pack)
    self.tokenize = _Tokenize(holder, pieces, start_id, end_id)
    self.__call__ = tf.function(lambda s: pack([pieces(s)]),
                                input_signature=[tf.TensorSpec([None], tf.string)])


def export_text_tower(tower, export_dir):
  """Saves a text tower as a TF-Hub BERT pair: `<export_dir>/preprocess` (its exact tokenizer,
  WordPiece or SentencePiece) and `<export_dir>/encoder` (dict of BERT inputs → `pooled_output`,
  `sequence_output`). Loads as `HubBertTextTower(preprocess, encoder, pooling=tower.pooling)`.
  Returns (preprocess_dir, encoder_dir)."""
  if not isinstance(tower, text_towers.TextTower):
    raise TypeError(f"expected a lit_keras text tower, got {type(tower).__name__}")
  preprocess_dir = os.path.join(export_dir, "preprocess")
  encoder_dir = os.path.join(export_dir, "encoder")
  tf.saved_model.save(_BertPreprocessor(tower), preprocess_dir)
  inputs = {k: tf_keras.Input([None], dtype=tf.int32, name=k) for k in text_towers.BERT_INPUT_KEYS}
  outputs = tower.export_encoder()(inputs)
  model = tf_keras.Model(inputs, {"pooled_output": outputs["pooled_output"],
                                  "sequence_output": outputs["sequence_output"]})
  model.save(encoder_dir, include_optimizer=False, save_format="tf")
  return preprocess_dir, encoder_dir
