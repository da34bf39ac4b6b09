"""The demo: LiT ("Lu") on the Google-style emoji with the ported, pretrained EfficientNet-Lite0
locked, trained from pre-computed image embeddings; a BERT text tower from scratch with the
MiniLM WordPiece vocabulary. Evaluated zero-shot on held-out concepts and on the 3D emoji.

  python train.py --config=configs/demo.py --workdir=workdirs/demo
  python evaluate.py --workdir=workdirs/demo
"""
from configs import common


def get_config(arg=None):
  c = common.base_config()
  c.dataset = "emoji"
  c.setting = "Lu"
  c.image.handle = "ports:efficientnet_lite0/feature_vector"
  c.image.image_size = 224
  c.text.preprocess = "ports:minilm_l6/preprocess"  # for the settings "?U" / "?L"
  c.text.encoder = "ports:minilm_l6/encoder"
  c.text.vocab = "ports:minilm_l6/vocab.txt"  # the from-scratch tower's WordPiece vocabulary
  c.text.bert = dict(hidden_size=256, num_layers=4, num_heads=4, inner_dim=1024)
  c.text.seq_length = 16
  c.model.embed_dim = 128
  c.precompute.enabled = True
  c.optim.lr = 1e-3
  c.optim.weight_decay = 1e-4
  c.optim.warmup_steps = 30
  c.batch_size = 256
  c.total_steps = 300
  c.steps_per_loop = 25
  c.log_every = 25
  c.checkpoint_every = 100
  c.eval_every = 100
  # Held-out concepts, during training too (from their pre-computed embeddings); the 3D style
  # only in evaluate.py (it would need its own pre-computation).
  c.evals.heldout_retrieval = common.evaluator("retrieval", "emoji", "heldout")
  c.evals.heldout_zero_shot = common.evaluator("zero_shot", "emoji", "heldout")
  for split in ("train", "heldout"):
    c.evals[f"style3d_{split}_retrieval"] = common.evaluator(
        "retrieval", "emoji_3d", split, during_training=False)
    c.evals[f"style3d_{split}_zero_shot"] = common.evaluator(
        "zero_shot", "emoji_3d", split, during_training=False)
  if arg == "runlocal":
    c.total_steps, c.log_every, c.checkpoint_every, c.eval_every = 10, 5, 5, 10
    c.steps_per_loop = 5
    c.batch_size = 32
  return c.lock()
