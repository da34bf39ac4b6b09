"""A tiny real TFDS dataset, prepared offline by TFDS itself (images, captions, class labels)."""
import numpy as np
import tensorflow_datasets as tfds

CLASS_NAMES = ("red_square", "green_circle", "blue_bar")
SPLITS = {"train": (24, 0), "test": (10, 1)}  # examples, seed


def generated(split):
  """The examples the builder writes for `split`, as the NumPy arrays and strings it was given."""
  n, seed = SPLITS[split]
  rng = np.random.default_rng(seed)
  out = []
  for i in range(n):
    label = int(rng.integers(0, len(CLASS_NAMES)))
    h, w = int(rng.integers(6, 20)), int(rng.integers(6, 20))
    image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    image[..., label] = 255
    captions = [f"{CLASS_NAMES[label].replace('_', ' ')} number {i}", f"{split} picture {i}"]
    out.append({"image": image, "captions": captions[:1 + i % 2], "label": label,
                "file_name": f"{split}_{i:03d}.png"})
  return out


class LitTinyCaptions(tfds.core.GeneratorBasedBuilder):
  """Images with one or two captions and a class label, in two splits."""

  VERSION = tfds.core.Version("1.0.0")

  def _info(self):
    return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict({
        "image": tfds.features.Image(shape=(None, None, 3)),
        "captions": tfds.features.Sequence(tfds.features.Text()),
        "label": tfds.features.ClassLabel(names=list(CLASS_NAMES)),
        "file_name": tfds.features.Text(),
    }))

  def _split_generators(self, dl_manager):
    del dl_manager
    return {split: self._generate_examples(split) for split in SPLITS}

  def _generate_examples(self, split):
    for i, ex in enumerate(generated(split)):
      yield i, ex


def prepare(data_dir):
  """Builds the dataset in `data_dir` (no network); returns its source prefix."""
  LitTinyCaptions(data_dir=data_dir).download_and_prepare()
  return "tfds:lit_tiny_captions"
