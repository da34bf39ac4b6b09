"""LiT on scikit-learn's digits: a one-minute CPU demo of the whole path ("Lu").

The locked image tower is a PCA of the training digits exported as a TF-Hub image feature-vector
SavedModel (pretrained without labels); the text tower is a small BERT trained from scratch.

  python train.py --config=configs/digits.py --workdir=workdirs/digits
  python evaluate.py --workdir=workdirs/digits

`--config=configs/digits.py:runlocal` shrinks the run to a few steps (smoke test).
"""
import ml_collections


def get_config(arg=None):
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.setting = "Lu"
  c.dataset = "digits"
  c.loss = "softmax"

  c.image = ml_collections.ConfigDict()
  c.image.handle = ""  # empty: the dataset's own pretrained module (digits: the PCA module)
  c.image.image_size = 8
  c.image.value_range = (0.0, 1.0)
  c.image.output_key = ""
  c.image.vit = dict(patch_size=2, hidden_size=32, num_layers=2, num_heads=2, mlp_dim=64)

  c.text = ml_collections.ConfigDict()
  c.text.vocab = ""  # empty: the dataset's own vocabulary
  c.text.seq_length = 16
  c.text.preprocess = ""
  c.text.encoder = ""
  c.text.pooling = "mean"
  c.text.bert = dict(hidden_size=32, num_layers=1, num_heads=2, inner_dim=64)

  c.model = ml_collections.ConfigDict()
  c.model.embed_dim = 32

  c.optim = ml_collections.ConfigDict()
  c.optim.name = "adamw"
  c.optim.lr = 3e-3
  c.optim.weight_decay = 1e-4
  c.optim.warmup_steps = 20
  c.optim.clip_grad_norm = 1.0

  c.batch_size = 64
  c.total_steps = 300
  c.log_every = 50
  c.checkpoint_every = 100

  if arg == "runlocal":
    c.total_steps = 10
    c.log_every = 5
    c.checkpoint_every = 5
  return c.lock()
