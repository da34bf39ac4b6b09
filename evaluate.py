"""Evaluates a LiT model: `python evaluate.py --workdir=DIR` (zero-shot and retrieval; see
lit_keras_app/cli/evaluate.py)."""
from absl import app

from lit_keras_app.cli import evaluate

if __name__ == "__main__":
  app.run(evaluate.main)
