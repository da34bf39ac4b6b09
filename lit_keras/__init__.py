"""lit_keras: LiT (Locked-image text Tuning, Zhai et al., CVPR 2022) for TensorFlow / tf_keras.

Importing the package pins Keras 2 first (`lit_keras.env`), before TensorFlow loads.

Layers of the library, each importing only from the ones before it:
  env, cache, serialization, assets,  foundations (no other lit_keras imports)
  errors
  data                                TFRecord schema, preprocessing, tf.data, pre-computed embeddings
  layers, losses                      projection heads and temperature; contrastive losses
  towers                              image and text towers in the paper's L / U / u states
  models                              LiTModel
  evaluation                          retrieval, zero-shot, prompts, evaluators
  training, export                    step, task, trainer; serving and TF-Hub-format exports
"""
from lit_keras import env  # noqa: F401  (first: sets TF_USE_LEGACY_KERAS before TensorFlow)

__version__ = "0.1.0"

from lit_keras import layers  # noqa: E402,F401
from lit_keras import losses  # noqa: E402,F401
from lit_keras import models  # noqa: E402,F401
from lit_keras import towers  # noqa: E402,F401
from lit_keras.models.lit_model import LiTModel  # noqa: E402,F401
