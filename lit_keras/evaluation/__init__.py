"""Zero-shot classification and retrieval."""
from lit_keras.evaluation.zero_shot import class_embeddings, zero_shot_accuracy

__all__ = ["class_embeddings", "zero_shot_accuracy"]
