"""Training: the distributed step, learning-rate schedules, the task (config → objects), the
trainer loop with checkpoints and resume, and the strategy factory."""
from lit_keras.training.step import compute_loss, make_train_step

__all__ = ["compute_loss", "make_train_step"]
