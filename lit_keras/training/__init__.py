"""Training: the distributed step, learning-rate schedules, the task (config → objects), the
trainer loop with checkpoints and resume, the strategy factory, and a fused AdamW."""
from lit_keras.training.optimizers import AdamW
from lit_keras.training.step import compute_loss, make_train_step

__all__ = ["AdamW", "compute_loss", "make_train_step"]
