"""Real-scale LiT recipe for a Cloud TPU (paper §4: Adam 1e-3, wd 1e-4, 224 px, 16 tokens).

Image: ViT-B/16 (AugReg i21k→i1k, jax2tf port on TF-Hub, input [-1, 1], fixed 224 px), locked.
Text: BERT-base from the public TF-Hub preprocess + encoder pair, fine-tuned ("LU"); use
`:scratch` for a from-scratch BERT-base text tower ("Lu", pass --config.text.vocab).

  python train.py --config=configs/lit_b16_bert_base.py --workdir=gs://BUCKET/lit_b16 \
      --strategy=tpu --tpu=local \
      --config.data.train="gs://BUCKET/data/train-*.tfrecord" \
      --config.evals.val_retrieval.data="gs://BUCKET/data/val-*.tfrecord"
"""
from configs import common


def get_config(arg=None):
  c = common.base_config()
  c.setting = "Lu" if arg == "scratch" else "LU"
  c.image.handle = "https://tfhub.dev/sayakpaul/vit_b16_fe/1"
  c.image.image_size = 224
  c.image.value_range = (-1.0, 1.0)
  c.text.preprocess = "https://tfhub.dev/tensorflow/bert_en_uncased_preprocess/3"
  c.text.encoder = "https://tfhub.dev/tensorflow/bert_en_uncased_L-12_H-768_A-12/4"
  c.text.pooling = "pooled"
  c.text.seq_length = 16
  c.text.bert = dict(hidden_size=768, num_layers=12, num_heads=12, inner_dim=3072)
  c.model.embed_dim = 768
  c.optim.name = "adamw"
  c.optim.lr = 1e-3
  c.optim.weight_decay = 1e-4
  c.optim.warmup_steps = 10_000
  c.batch_size = 16_384
  c.total_steps = 55_000  # ≈ 900M examples seen
  c.steps_per_loop = 100
  c.log_every = 100
  c.checkpoint_every = 1000
  c.eval_every = 5000
  c.mixed_precision = True
  # Set their data to evaluate (e.g. --config.evals.imagenet.data="gs://BUCKET/imagenet-val-*"):
  c.evals.val_retrieval = common.evaluator("retrieval")
  c.evals.imagenet = common.evaluator("zero_shot", classes="imagenet1k", templates="clip")
  return c.lock()
