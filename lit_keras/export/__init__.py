"""Exports: the serving SavedModel of a trained LiT model (`serving`) and TF-Hub-format
SavedModels of towers (`tfhub_format`)."""
from lit_keras.export.tfhub_format import export_bert_pair
from lit_keras.export.tfhub_format import export_image_feature_vector
from lit_keras.export.tfhub_format import export_image_tower
from lit_keras.export.tfhub_format import export_text_tower

__all__ = ["export_bert_pair", "export_image_feature_vector", "export_image_tower",
           "export_text_tower"]
