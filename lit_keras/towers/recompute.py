"""Recomputation (gradient checkpointing) of transformer blocks.

A tower trained under a tape keeps every intermediate activation of every block for the backward
pass; at large batches that is most of the step's memory. With recomputation each block keeps
only its input: the forward pass runs the block without recording, and the backward pass runs
it again under its own tape (`tf.recompute_grad`), so activation memory falls from all blocks'
intermediates to one block's plus the blocks' inputs, for about one more forward pass of compute.
The gradients are the same computation, so they equal the plain ones to float32 rounding.

It applies to the towers built here from tf-models-official blocks (`BertTextTower`,
`ViTImageTower`); a TF-Hub SavedModel is one opaque call whose blocks cannot be reached.
Dropout would draw different masks in the recomputed pass, so it must be off.
"""
import tensorflow as tf


def recompute_blocks(blocks, dropout_rate=0.0, owner="tower"):
  """Makes each Keras layer in `blocks` recompute its forward pass during backprop.

  Args:
    blocks: the transformer blocks (Keras layers, already built) to wrap.
    dropout_rate: the blocks' dropout; must be 0 (checked here, with `owner` named).
    owner: what the blocks belong to, for the error message.
  """
  if dropout_rate:
    raise ValueError(f"{owner}: recompute=True needs dropout_rate=0 (the recomputed forward pass "
                     f"would draw other dropout masks than the first, got {dropout_rate})")
  for block in blocks:
    block.call = _recomputed(block.call)


def _recomputed(call):
  """`call(inputs, **kwargs)` with `tf.recompute_grad` over the inputs' tensors. The keyword
  arguments (`training`, `output_range`) are Python values fixed at trace time: they are closed
  over, as `tf.custom_gradient` takes positional tensors only in graph mode."""

  @tf.autograph.experimental.do_not_convert
  def wrapped(inputs, **kwargs):
    structure = inputs

    def forward(*flat):
      return call(tf.nest.pack_sequence_as(structure, list(flat)), **kwargs)

    return tf.recompute_grad(forward)(*tf.nest.flatten(inputs))

  return wrapped
