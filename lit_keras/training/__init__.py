"""Training: the distributed step (and, later, the trainer loop, optimizers, checkpoints)."""
from lit_keras.training.step import compute_loss, make_train_step

__all__ = ["compute_loss", "make_train_step"]
