"""Trainable assemblies of towers."""
from lit_keras.models.lit_model import LiTModel

__all__ = ["LiTModel"]
