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

  Each block's class becomes a subclass of its own (same name) whose `call` is the original one
  under `tf.recompute_grad`: a method, so Keras' call conventions and SavedModel tracing see an
  ordinary layer.

  Args:
    blocks: the transformer blocks (Keras layers, already built) to wrap.
    dropout_rate: the blocks' dropout; must be 0 (checked here, with `owner` named).
    owner: what the blocks belong to, for the error message.
  """
  if dropout_rate:
    raise ValueError(f"{owner}: recompute=True needs dropout_rate=0 (the recomputed forward pass "
                     f"would draw other dropout masks than the first, got {dropout_rate})")
  for block in blocks:
    block.__class__ = _recomputing(type(block))


_SUBCLASSES = {}


def _recomputing(cls):
  """`cls` with `call(inputs, ...)` under `tf.recompute_grad` over the inputs' tensors. The other
  arguments (`output_range`, `training`) are Python values fixed at trace time: they are closed
  over, as `tf.custom_gradient` takes positional tensors only in graph mode."""
  if getattr(cls, "recomputes", False):
    return cls
  if cls not in _SUBCLASSES:

    def call(self, inputs, *args, **kwargs):
      plain = super(sub, self).call

      def forward(*flat):
        return plain(tf.nest.pack_sequence_as(inputs, list(flat)), *args, **kwargs)

      return tf.recompute_grad(forward)(*tf.nest.flatten(inputs))

    sub = type(cls.__name__, (cls,), {"call": call, "recomputes": True,
                                      "__module__": cls.__module__,
                                      "__doc__": f"{cls.__name__}, recomputed in backprop."})
    _SUBCLASSES[cls] = sub
  return _SUBCLASSES[cls]
