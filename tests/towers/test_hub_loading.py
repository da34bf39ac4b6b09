"""Hub towers load their modules without importing Keras 3, and hold the module's own weights."""
import json
import os
import subprocess
import sys

import numpy as np
import tensorflow as tf

# A fresh process: the test process may have imported anything by now.
CHILD = r"""
import json, sys
import lit_keras
import tensorflow as tf
from lit_keras import towers
image = towers.HubImageTower(sys.argv[1], state="U", image_size=16)
features = image(tf.fill([2, 16, 16, 3], 0.5), training=False)
text = towers.HubBertTextTower(sys.argv[2], sys.argv[3], state="L", seq_length=16)
text(tf.constant(["a red apple", "a cat"]))
print(json.dumps({
    "keras_3_imported": "keras" in sys.modules,
    "features": features.numpy().tolist(),
    "image_trainable": sorted(v.name for v in image.trainable_variables),
    "text_weights": len(text.weights), "text_trainable": len(text.trainable_variables),
}))
"""


def test_hub_towers_do_not_import_keras_3(image_module, bert_pair):
  env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
  out = subprocess.run([sys.executable, "-c", CHILD, image_module, *bert_pair], env=env,
                       capture_output=True, text=True, timeout=300, check=True)
  got = json.loads(out.stdout.strip().splitlines()[-1])
  # hub.KerasLayer(<path>) would `import keras` (Keras 3): ~100 MB and ~1.5 s, never used.
  assert got["keras_3_imported"] is False

  # The tower's module is the SavedModel itself: its trainable variables, its forward pass.
  module = tf.saved_model.load(image_module)
  assert got["image_trainable"] == sorted(v.name for v in module.trainable_variables)
  np.testing.assert_allclose(got["features"], module(tf.fill([2, 16, 16, 3], 0.5),
                                                     training=False).numpy(), rtol=1e-6)
  encoder = tf.saved_model.load(bert_pair[1])
  assert got["text_weights"] == len(encoder.variables) and got["text_weights"] > 0
  assert got["text_trainable"] == 0  # locked
