"""The tower contract shared by image and text towers: the paper's L / U / u states."""
import tensorflow_hub as hub
import tf_keras

from lit_keras.towers import tape

# The paper's letters (LiT §3): L = pretrained and locked, U = pretrained and unlocked (trained),
# u = randomly initialised and trained.
LOCKED, UNLOCKED, SCRATCH = "L", "U", "u"
STATES = (LOCKED, UNLOCKED, SCRATCH)


def parse_setting(setting):
  """Splits a two-letter setting such as "Lu" into (image_state, text_state), validating both."""
  if not isinstance(setting, str) or len(setting) != 2 or any(c not in STATES for c in setting):
    raise ValueError(
        f"Invalid setting {setting!r}: expected two letters from {STATES}, image tower first "
        "(e.g. 'Lu' = locked pretrained image tower + text tower trained from scratch).")
  return setting[0], setting[1]


def validate_state(state, allowed=STATES, what="tower"):
  if state not in allowed:
    raise ValueError(f"Invalid state {state!r} for {what}: expected one of {allowed} "
                     "(L = pretrained+locked, U = pretrained+trained, u = random init+trained).")
  return state


def hub_layer(handle, **kwargs):
  """`hub.KerasLayer(handle, **kwargs)`, the module loaded by `hub.load` first.

  Given a string, `hub.KerasLayer` first tries `import keras` to ask Keras for load options;
  on this stack that import is Keras 3, which the layer cannot use (it ends up with no
  options): ~100 MB of host memory and ~1.5 s for nothing. Loaded here, the layer is the same,
  with the same variables; `handle` is still any TF-Hub/Kaggle handle or local path.
  """
  return hub.KerasLayer(hub.load(handle), **kwargs)


class Tower(tf_keras.layers.Layer):
  """Base class of all towers.

  A tower in state "L" is created with `trainable=False` (so it has zero trainable weights and
  no optimizer ever sees it) and is always run with `training=False` (frozen BatchNorm statistics,
  no dropout). Its forward pass runs with tape recording stopped, so no `GradientTape` records its
  ops, keeps its activations or builds its backward pass — not merely discards it.

  Subclasses implement `encode(inputs, training)` and add their own constructor arguments.
  """

  allowed_states = STATES

  def __init__(self, state=LOCKED, **kwargs):
    kwargs.pop("trainable", None)  # The state decides; a stored `trainable` must not override it.
    validate_state(state, self.allowed_states, type(self).__name__)
    super().__init__(trainable=state != LOCKED, **kwargs)
    self.state = state

  @property
  def locked(self):
    return self.state == LOCKED

  def call(self, inputs, training=None):
    if self.locked:
      # No tape may record a locked tower: hub SavedModel variables keep `trainable=True` as tf
      # Variables even when the Keras layer is frozen, so a default tape would watch them and
      # keep the tower's activations for a backward pass that is never wanted.
      with tape.stop_recording():
        return self.encode(inputs, training=False)
    return self.encode(inputs, training=training)

  def encode(self, inputs, training=None):
    raise NotImplementedError

  def get_config(self):
    config = super().get_config()
    config.pop("trainable", None)
    config["state"] = self.state
    return config
