"""Contrastive losses over the global batch (this replica's rows vs all replicas' columns)."""
from lit_keras.losses.contrastive import LOSSES, get_loss, sigmoid_contrastive_loss, softmax_contrastive_loss

__all__ = ["LOSSES", "get_loss", "sigmoid_contrastive_loss", "softmax_contrastive_loss"]
