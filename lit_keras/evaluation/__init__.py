"""Zero-shot classification and retrieval."""
from lit_keras.evaluation.retrieval import recall_at_k
from lit_keras.evaluation.zero_shot import class_embeddings, zero_shot_accuracy

__all__ = ["class_embeddings", "recall_at_k", "zero_shot_accuracy"]
