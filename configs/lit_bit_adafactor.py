"""Large-batch LiT recipe with Adafactor (the paper's optimiser at its largest scale, no weight
decay): BiT-M R50x1 image tower (TF-Hub, [0, 1], any size), locked; BERT-base text tower.

  python train.py --config=configs/lit_bit_adafactor.py --workdir=gs://BUCKET/lit_bit \
      --strategy=tpu --tpu=local --config.data.train="gs://BUCKET/data/train-*.tfrecord"
"""
from configs import common


def get_config(arg=None):
  del arg
  c = common.base_config()
  c.setting = "LU"
  c.image.handle = "https://tfhub.dev/google/bit/m-r50x1/1"
  c.image.image_size = 224
  c.text.preprocess = "https://tfhub.dev/tensorflow/bert_en_uncased_preprocess/3"
  c.text.encoder = "https://tfhub.dev/tensorflow/bert_en_uncased_L-12_H-768_A-12/4"
  c.model.embed_dim = 768
  c.optim.name = "adafactor"
  c.optim.lr = 1e-3
  c.optim.weight_decay = 0.0
  c.optim.warmup_steps = 10_000
  c.batch_size = 16_384
  c.total_steps = 55_000
  c.steps_per_loop = 50
  c.mixed_precision = True
  # Set their data to evaluate (e.g. --config.evals.imagenet.data="gs://BUCKET/imagenet-val-*"):
  c.evals.val_retrieval = common.evaluator("retrieval")
  c.evals.imagenet = common.evaluator("zero_shot", classes="imagenet1k", templates="clip")
  return c.lock()
