"""Evaluation: retrieval, zero-shot classification, prompts and class lists, evaluators."""
from lit_keras.evaluation import evaluators
from lit_keras.evaluation import prompts
from lit_keras.evaluation.embed import embed_eval_set
from lit_keras.evaluation.retrieval import recall_at_k
from lit_keras.evaluation.sharded import sharded_map
from lit_keras.evaluation.zero_shot import class_embeddings, zero_shot_accuracy

__all__ = ["class_embeddings", "embed_eval_set", "evaluators", "prompts", "recall_at_k",
           "sharded_map", "zero_shot_accuracy"]
