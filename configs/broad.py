"""Broad LiT: the training concepts of three real image–text sources at once — Google-style emoji
(`emoji`), the same concepts drawn in 3D (`emoji_3d`) and Open Clip Art drawings
(`openclipart`) — with the ported EfficientNet-Lite0 locked (pre-computed embeddings), and the
text tower either from scratch ("Lu", the demo's BERT) or the pretrained MiniLM-L6 trained
("LU"), same budget. Evaluated on what no run trains on: held-out emoji concepts, held-out Open
Clip Art concepts (retrieval, and zero-shot into its 20 top-level categories), and held-out
concepts in the 3D style. `leave_out=SOURCE` trains on the other two sources only: the measure of
transfer to a style never seen in training (docs/transfer.md).

  python train.py --config=configs/broad.py:Lu --workdir=workdirs/broad_Lu
  python train.py --config=configs/broad.py:LU,leave_out=openclipart --config.seed=1 \\
      --workdir=workdirs/broad_LU_no_openclipart_1
  python evaluate.py --workdir=workdirs/broad_Lu
"""
from configs import common

SOURCES = ("emoji", "emoji_3d", "openclipart")
LEARNING_RATE = {"Lu": 1e-3, "LU": 1e-4}  # from scratch; fine-tuning a pretrained tower


def parse_arg(arg):
  """"Lu" | "LU", then options: "leave_out=SOURCE", "runlocal" → (setting, left out, runlocal)."""
  parts = [p for p in (arg or "Lu").split(",") if p]
  setting, leave_out, runlocal = parts[0], "", False
  for p in parts[1:]:
    if p == "runlocal":
      runlocal = True
    elif p.startswith("leave_out="):
      leave_out = p.split("=", 1)[1]
    else:
      raise ValueError(f"configs/broad.py: unknown option {p!r} (leave_out=SOURCE, runlocal)")
  if setting not in LEARNING_RATE:
    raise ValueError(f"configs/broad.py: setting {setting!r}; expected one of "
                     f"{sorted(LEARNING_RATE)}")
  if leave_out and leave_out not in SOURCES:
    raise ValueError(f"configs/broad.py: leave_out={leave_out!r}; expected one of {SOURCES}")
  return setting, leave_out, runlocal


def get_config(arg=None):
  setting, leave_out, runlocal = parse_arg(arg)
  c = common.base_config()
  c.dataset = "+".join(s for s in SOURCES if s != leave_out)
  c.setting = setting
  c.image.handle = "ports:efficientnet_lite0/feature_vector"
  c.image.image_size = 224
  c.text.preprocess = "ports:minilm_l6/preprocess"  # LU: the pretrained MiniLM-L6, trained
  c.text.encoder = "ports:minilm_l6/encoder"
  c.text.vocab = "ports:minilm_l6/vocab.txt"  # Lu: the from-scratch tower's WordPiece vocabulary
  c.text.bert = dict(hidden_size=256, num_layers=4, num_heads=4, inner_dim=1024)
  c.text.seq_length = 16
  c.model.embed_dim = 128
  c.precompute.enabled = True
  c.optim.lr = LEARNING_RATE[setting]
  c.optim.weight_decay = 1e-4
  c.optim.warmup_steps = 30
  c.batch_size = 256
  c.total_steps = 300  # ≈ 11 epochs of the 7,246 training pairs
  c.steps_per_loop = 25
  c.log_every = 50
  c.checkpoint_every = 100
  c.eval_every = 300
  c.evals.emoji_heldout_retrieval = common.evaluator("retrieval", "emoji", "heldout")
  c.evals.emoji_heldout_zero_shot = common.evaluator("zero_shot", "emoji", "heldout")
  c.evals.openclipart_heldout_retrieval = common.evaluator("retrieval", "openclipart", "heldout")
  c.evals.openclipart_heldout_categories = common.evaluator("zero_shot", "openclipart", "heldout")
  c.evals.style3d_heldout_retrieval = common.evaluator("retrieval", "emoji_3d", "heldout")
  c.evals.style3d_heldout_zero_shot = common.evaluator("zero_shot", "emoji_3d", "heldout")
  if runlocal:
    c.total_steps, c.log_every, c.checkpoint_every, c.eval_every = 10, 5, 5, 10
    c.steps_per_loop = 5
    c.batch_size = 32
  return c.lock()
