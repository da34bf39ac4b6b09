"""The one private TensorFlow API we use (pausing all tapes): fails loudly if TensorFlow changes it."""
import tensorflow as tf

from lit_keras.towers import tape


def test_pauses_every_active_tape_eagerly_and_in_a_function():
  v = tf.Variable(3.0)

  def run():
    with tf.GradientTape() as outer, tf.GradientTape(persistent=True) as inner:
      with tape.stop_recording():
        hidden = v * v  # recorded by neither tape
      seen = v * v
    # d(hidden + seen)/dv is 6 if only `seen` was recorded, 12 if `hidden` was too.
    return outer.gradient([hidden, seen], v), inner.gradient(hidden, v), inner.gradient(seen, v)

  for fn in (run, tf.function(run)):
    both_outer, hidden_inner, seen_inner = fn()
    assert hidden_inner is None and float(both_outer) == 6.0, (
        "tensorflow.python.eager.record.stop_recording no longer pauses every tape: "
        "locked towers would be recorded (see lit_keras/towers/tape.py)")
    assert float(seen_inner) == 6.0  # recording resumes after the context


def test_nesting_restores_recording():
  v = tf.Variable(2.0)
  with tf.GradientTape(persistent=True) as t:
    with tape.stop_recording():
      with tape.stop_recording():
        pass
      hidden = v * 5.0  # still paused after the inner context ended
    seen = v * 5.0
  assert t.gradient(hidden, v) is None
  assert float(t.gradient(seen, v)) == 5.0
