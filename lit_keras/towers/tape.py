"""Pausing every gradient tape at once: the one private TensorFlow API lit_keras uses.

A locked tower must run with no `GradientTape` recording it, so that no tape keeps its activations
or builds its backward pass. The public `tf.GradientTape.stop_recording()` pauses only the tape it
is called on, and a tower cannot know which tapes are active (a user's, Keras `fit()`'s, ours).
TensorFlow's own "pause all tapes on this thread" context, `tensorflow.python.eager.record.
stop_recording` (what `tf.custom_gradient` and the tape internals use), is not exported. It is
imported here and nowhere else; `tests/towers/test_tape.py` fails with a clear message if a
TensorFlow release moves or changes it.
"""
from tensorflow.python.eager import record  # pylint: disable=g-direct-tensorflow-import


def stop_recording():
  """A context manager under which no active gradient tape (of this thread) records ops."""
  return record.stop_recording()
