"""Keras serialization: the package name every public layer and model is registered under."""
import tf_keras

PACKAGE = "lit_keras"


def register(cls_or_fn=None, name=None):
  """`tf_keras.utils.register_keras_serializable` under the `lit_keras` package.

  Usable bare (`@register`) or with a name (`@register(name="exact_gelu")`).
  """
  decorator = tf_keras.utils.register_keras_serializable(package=PACKAGE, name=name)
  return decorator if cls_or_fn is None else decorator(cls_or_fn)
