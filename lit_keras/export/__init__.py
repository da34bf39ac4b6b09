"""Exports: TF-Hub-format SavedModels of towers (and, later, LiT serving signatures)."""
from lit_keras.export.tfhub_format import export_bert_pair, export_image_feature_vector

__all__ = ["export_bert_pair", "export_image_feature_vector"]
