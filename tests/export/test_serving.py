"""The serving SavedModel: signatures, and a fresh process that imports only TF + TF Text."""
import json
import os
import subprocess
import sys

import numpy as np
from PIL import Image
import tensorflow as tf
import tf_keras

from lit_keras.data import preprocess
from lit_keras.export import serving
from tests import tiny_models

CLASSES = ["cat", "dog", ["digit", "number"]]
TEMPLATES = ["a photo of a {}.", "{}"]

CHILD = r"""
import json, sys
# lit_keras and tf_keras cannot be imported in this process (a None entry halts their import).
for name in ("lit_keras", "lit_keras_app", "tf_keras"):
  sys.modules[name] = None
import numpy as np
import tensorflow as tf
import tensorflow_text  # noqa: F401  (the ops of the text tokenizer)
m = tf.saved_model.load(sys.argv[1])
for name in ("lit_keras", "tf_keras"):
  try:
    __import__(name)
    raise AssertionError(f"{name} was importable")
  except ModuleNotFoundError:
    pass
d = np.load(sys.argv[2])
out = {
  "bytes": m.signatures["embed_image"](encoded=tf.constant(
      [open(p, "rb").read() for p in sys.argv[4:]]))["embeddings"],
  "uint8": m.signatures["embed_image_tensor"](images=tf.constant(d["uint8"]))["embeddings"],
  "float": m.signatures["embed_image_float"](images=tf.constant(d["float"]))["embeddings"],
  "text": m.signatures["embed_text"](texts=tf.constant(list(d["texts"])))["embeddings"],
  "probs": m.signatures["zero_shot"](images=tf.constant(d["uint8"]))["probabilities"],
}
np.savez(sys.argv[3], **{k: v.numpy() for k, v in out.items()},
         class_names=m.class_names.numpy())
print(json.dumps(sorted(m.signatures.keys())))
"""


def test_export_runs_in_a_fresh_process(tmp_path, image_module, vocab_file):
  tf_keras.utils.set_random_seed(0)
  model = tiny_models.lit_model("Lu", image_module, vocab_file)
  rng = np.random.default_rng(0)
  uint8 = rng.integers(0, 255, (3, 20, 24, 3), dtype=np.uint8)
  pngs = []
  for i, im in enumerate(uint8):
    pngs.append(str(tmp_path / f"{i}.png"))
    Image.fromarray(im).save(pngs[-1])
  texts = np.array([b"a photo of a cat.", b"digit", "invalid \xff utf8".encode("latin-1")])
  model({"image": np.zeros([1, 16, 16, 3], np.float32), "text": tf.constant(["a"])})
  path = str(tmp_path / "export")
  serving.export(model, path, 16, CLASSES, TEMPLATES)

  inputs = str(tmp_path / "inputs.npz")
  np.savez(inputs, uint8=uint8,
           float=uint8.astype(np.float32) / 255.0, texts=texts)
  outputs = str(tmp_path / "outputs.npz")
  env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
  proc = subprocess.run([sys.executable, "-c", CHILD, path, inputs, outputs, *pngs], env=env,
                        capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert json.loads(proc.stdout.strip().splitlines()[-1]) == [
      "embed_image", "embed_image_float", "embed_image_tensor", "embed_text", "zero_shot"]
  got = np.load(outputs, allow_pickle=True)

  # In-process references: the same preprocessing (central crop + resize) and the model.
  images = np.stack([preprocess.central_crop_resize(tf.constant(im / 255.0, tf.float32), 16)
                     for im in uint8])
  ref_img = model.encode_image(images).numpy()
  ref_txt = model.encode_text(tf.constant(texts)).numpy()
  for key in ("bytes", "uint8", "float"):
    np.testing.assert_allclose(got[key], ref_img, atol=1e-5, err_msg=key)
  np.testing.assert_allclose(got["text"], ref_txt, atol=1e-5)
  np.testing.assert_allclose(np.linalg.norm(got["text"], axis=1), 1.0, rtol=1e-5)
  from lit_keras import evaluation
  cls = evaluation.class_embeddings(model, CLASSES, TEMPLATES)
  logits = 10.0 * ref_img @ cls.T
  probs = np.exp(logits - logits.max(1, keepdims=True))
  np.testing.assert_allclose(got["probs"], probs / probs.sum(1, keepdims=True), atol=1e-5)
  assert [c.decode() for c in got["class_names"]] == ["cat", "dog", "digit"]


SP_CHILD = r"""
import sys
import numpy as np
import tensorflow as tf
import tensorflow_text  # noqa: F401
m = tf.saved_model.load(sys.argv[1])
texts = [t for t in open(sys.argv[2], encoding="utf-8").read().split("\n") if t]
np.save(sys.argv[3], m.signatures["embed_text"](texts=tf.constant(texts))["embeddings"].numpy())
"""


def test_sentencepiece_export_embeds_non_latin_text(tmp_path, image_module):
  """embed_text of the export, on strings in several scripts, equals the in-process model."""
  import sentencepiece as spm
  from lit_keras import towers
  from lit_keras.models import LiTModel
  texts = ["犬の写真", "صورة كلب", "ภาพถ่ายของสุนัข", "фотография собаки", "कुत्ते की तस्वीर",
           "개 사진", "狗的照片", "a photo of a dog"]
  spm.SentencePieceTrainer.train(sentence_iterator=iter(texts * 30),
                                 model_prefix=str(tmp_path / "sp"), vocab_size=65, pad_id=0,
                                 unk_id=1, bos_id=2, eos_id=3, character_coverage=1.0,
                                 minloglevel=2)
  tf_keras.utils.set_random_seed(0)
  text_tower = towers.BertTextTower(towers.SentencePieceTokenizer(str(tmp_path / "sp.model")),
                                    hidden_size=16, num_layers=1, num_heads=2, inner_dim=32)
  model = LiTModel(towers.HubImageTower(image_module, image_size=16), text_tower, embed_dim=8)
  ref = model.encode_text(tf.constant(texts)).numpy()
  path = str(tmp_path / "export")
  serving.export(model, path, 16)
  (tmp_path / "texts.txt").write_text("\n".join(texts), encoding="utf-8")
  env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
  proc = subprocess.run([sys.executable, "-c", SP_CHILD, path, str(tmp_path / "texts.txt"),
                         str(tmp_path / "out.npy")], env=env, capture_output=True, text=True,
                        timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  np.testing.assert_allclose(np.load(tmp_path / "out.npy"), ref, atol=1e-5)
  assert len({tuple(r.round(4)) for r in ref}) == len(texts)  # distinct texts, distinct vectors


KERAS3_CHILD = r"""
import os, sys
import numpy as np
assert "TF_USE_LEGACY_KERAS" not in os.environ
import keras  # Keras 3
import tensorflow_text  # noqa: F401  (the tokenizer's ops)
assert keras.__version__.startswith("3."), keras.__version__
text = keras.layers.TFSMLayer(sys.argv[1], call_endpoint="embed_text")
image = keras.layers.TFSMLayer(sys.argv[1], call_endpoint="embed_image_float")
texts = keras.Input(shape=(), dtype="string")
images = keras.Input(shape=(16, 16, 3))
model = keras.Model([images, texts], [image(images)["embeddings"], text(texts)["embeddings"]])
d = np.load(sys.argv[2])
img, txt = model([d["images"], d["texts"]])
np.savez(sys.argv[3], image=np.asarray(img), text=np.asarray(txt))
"""


def test_keras3_users_load_the_export_with_tfsmlayer(tmp_path, image_module, vocab_file):
  """A Keras 3 model (no TF_USE_LEGACY_KERAS, fresh process) wraps the export's signatures with
  `keras.layers.TFSMLayer` and computes what the model computes."""
  tf_keras.utils.set_random_seed(1)
  model = tiny_models.lit_model("Lu", image_module, vocab_file)
  rng = np.random.default_rng(1)
  images = rng.uniform(size=(3, 16, 16, 3)).astype(np.float32)
  texts = np.array([b"a photo of a cat", b"the digit seven", b"espresso"])
  model({"image": images, "text": tf.constant(texts)})
  path = str(tmp_path / "export")
  serving.export(model, path, 16)
  np.savez(str(tmp_path / "in.npz"), images=images, texts=texts)
  env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
  proc = subprocess.run([sys.executable, "-c", KERAS3_CHILD, path, str(tmp_path / "in.npz"),
                         str(tmp_path / "out.npz")], env=env, capture_output=True, text=True,
                        timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  got = np.load(tmp_path / "out.npz")
  np.testing.assert_allclose(got["image"], model.encode_image(images).numpy(), atol=1e-5)
  np.testing.assert_allclose(got["text"], model.encode_text(tf.constant(texts)).numpy(),
                             atol=1e-5)
