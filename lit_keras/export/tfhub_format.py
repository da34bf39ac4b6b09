"""Write towers in exactly the TF-Hub interfaces that `lit_keras.towers` load.

- `export_image_feature_vector`: the TF2 hub image convention — float images `[b, H, W, 3]` in
  the module's value range → pooled features `[b, D]`; reloads in `hub.KerasLayer` frozen or
  trainable (the `training` argument is kept, so BatchNorm freezes when locked).
- `export_bert_pair`: a BERT preprocess + encoder pair through tf-models-official's
  `export_tfhub_lib`, the same code that produced the public tfhub.dev BERT models.
"""
import os
import tempfile

import tensorflow as tf
import tf_keras


def export_image_feature_vector(model, export_dir):
  """Saves a tf_keras image model (images → [b, D] features) as a TF2 hub feature vector."""
  if not isinstance(model, tf_keras.Model):
    raise TypeError(f"expected a tf_keras.Model, got {type(model).__name__}")
  model.save(export_dir, include_optimizer=False, save_format="tf")
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
  from official.nlp.tools import export_tfhub_lib  # pylint: disable=g-import-not-at-top
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

