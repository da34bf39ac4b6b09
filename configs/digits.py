"""LiT on scikit-learn's digits: a one-minute CPU run of the whole path ("Lu").

The locked image tower is a PCA of the training digits exported as a TF-Hub image feature-vector
SavedModel (pretrained without labels); the text tower is a small BERT trained from scratch.

  python train.py --config=configs/digits.py --workdir=workdirs/digits
  python evaluate.py --workdir=workdirs/digits
"""
from configs import common


def get_config(arg=None):
  c = common.base_config()
  c.dataset = "digits"
  c.setting = "Lu"
  c.image.handle = "digits:pca_feature_vector"
  c.text.vocab = "digits:vocab"
  c.image.image_size = 8
  c.image.vit = dict(patch_size=2, hidden_size=32, num_layers=2, num_heads=2, mlp_dim=64)
  c.text.bert = dict(hidden_size=32, num_layers=1, num_heads=2, inner_dim=64)
  c.text.pooling = "mean"
  c.model.embed_dim = 32
  c.optim.lr = 3e-3
  c.optim.warmup_steps = 20
  c.data.shuffle_buffer = 2000
  c.data.augment = False  # random crops of 8×8 digits would destroy them
  c.batch_size = 64
  c.total_steps = 300
  c.steps_per_loop = 50
  c.log_every = 50
  c.checkpoint_every = 100
  c.eval_every = 300
  c.evals.test_retrieval = common.evaluator("retrieval", "digits", "test")
  c.evals.test_zero_shot = common.evaluator("zero_shot", "digits", "test")
  # Linear probes of the PCA features and of the LiT embedding, 1/5/10 training digits a class.
  c.evals.test_fewshot = common.evaluator("fewshot", "digits", "test", train_split="train",
                                          shots=(1, 5, 10))
  if arg == "runlocal":
    c.total_steps, c.log_every, c.checkpoint_every, c.eval_every = 10, 5, 5, 10
    c.steps_per_loop = 5
  return c.lock()
