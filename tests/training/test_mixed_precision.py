"""Mixed precision: from-scratch towers and heads compute in bfloat16 with float32 variables; the
loss and the temperature stay float32; a bfloat16 run tracks a float32 run."""
import json

import numpy as np
import tensorflow as tf
import tf_keras

from lit_keras import losses
from lit_keras.models import LiTModel
from tests import runs
from tests import tiny_models


def test_compute_dtypes(image_module, vocab_file):
  tf_keras.mixed_precision.set_global_policy("mixed_bfloat16")
  try:
    batch = tiny_models.random_batch(4, vocab_file)
    scratch = LiTModel(tiny_models.scratch_image_tower(), tiny_models.scratch_text_tower(vocab_file),
                       embed_dim=8)
    out = scratch(batch)
    hub = tiny_models.lit_model("Lu", image_module, vocab_file)
    hub(batch)
  finally:
    tf_keras.mixed_precision.set_global_policy("float32")
  for tower in (scratch.image_tower, scratch.text_tower):
    layers = [l for l in tower._flatten_layers() if l.weights and l is not tower]  # pylint: disable=protected-access
    # tf-models-official keeps most of its LayerNormalizations in float32 (for stability); the
    # rest — embeddings, attention, feed-forward, patch projection — computes in bfloat16.
    rest = {l.compute_dtype for l in layers
            if not isinstance(l, tf_keras.layers.LayerNormalization)
            and not any(isinstance(s, tf_keras.layers.LayerNormalization)
                        for s in l._flatten_layers())}  # pylint: disable=protected-access
    assert rest == {"bfloat16"}, (tower.name, rest)
    assert {v.dtype for v in tower.weights} == {tf.float32}, tower.name
  tokens = scratch.text_tower.tokenize(tf.constant(["a photo of a cat"]))
  embedded = scratch.text_tower.encoder.get_embedding_layer()(tokens["input_word_ids"])
  assert embedded.dtype == tf.bfloat16  # the activations themselves, not only the settings
  for head in (scratch.image_head, scratch.text_head):
    assert head.compute_dtype == "bfloat16" and {v.dtype for v in head.weights} == {tf.float32}
  assert scratch.logit_scale.compute_dtype == "float32" and out["logit_scale"].dtype == tf.float32
  assert out["zimg"].dtype == out["ztxt"].dtype == tf.float32
  loss, _ = losses.softmax_contrastive_loss(out["zimg"], out["ztxt"], out["logit_scale"])
  assert loss.dtype == tf.float32
  # A TF-Hub tower runs in the dtype its SavedModel was exported in (float32 here).
  assert hub.image_tower.compute_dtype == "float32" and hub.image_head.compute_dtype == "bfloat16"


def _losses(workdir):
  with open(f"{workdir}/metrics.jsonl") as f:
    return np.array([json.loads(line)["loss"] for line in f if line.strip()])


def test_bfloat16_run_tracks_float32(tmp_path):
  """8 steps of the digits run (text tower from scratch, heads) in bfloat16 vs float32: every
  step's loss within 2% (bfloat16 keeps 8 bits of mantissa: ~0.4% per rounding)."""
  cache = str(tmp_path / "cache")
  got = {}
  for mixed in (False, True):
    workdir = str(tmp_path / f"mixed{mixed}")
    try:
      runs.train(runs.config(cache, total_steps=8, steps_per_loop=4, checkpoint_every=8,
                             log_every=4, mixed_precision=mixed, deterministic=True), workdir)
    finally:
      tf_keras.mixed_precision.set_global_policy("float32")
    got[mixed] = _losses(workdir)
  assert len(got[True]) == 8 and not np.array_equal(got[True], got[False])  # really bfloat16
  np.testing.assert_allclose(got[True], got[False], rtol=0.02)
