"""Small serializable building blocks shared by the towers and the model."""
from lit_keras.layers.logit_scale import LogitScale
from lit_keras.layers.projection_head import ProjectionHead

__all__ = ["LogitScale", "ProjectionHead"]
