"""Trains a LiT model: `python train.py --config=configs/NAME.py --workdir=DIR` (see
lit_keras_app/cli/train.py and docs/training.md)."""
from absl import app

from lit_keras_app.cli import train

if __name__ == "__main__":
  app.run(train.main)
