"""Evaluators declared by name and type, as big_vision declares them in a config.

    evals = {
        "heldout_retrieval": {"type": "retrieval", "data": "gs://b/val-*.tfrecord"},
        "heldout_zero_shot": {"type": "zero_shot", "data": "gs://b/val-*.tfrecord",
                              "classes": "imagenet1k", "templates": "clip"},
        "cifar100_zero_shot": {"type": "zero_shot", "data": "tfds:cifar100:test"},
        "cifar100_fewshot": {"type": "fewshot", "data": "tfds:cifar100:test",
                             "train_data": "tfds:cifar100:train"},
    }
    evaluators = evaluators.build(evals, image_size=224)
    results = evaluators.evaluate(evaluators, model, out_dir="eval/")   # {name: {metric: value}}

The same evaluators run during training (`LiTTask.build_evaluators`, every `eval_every` steps)
and in `evaluate.py`: one code path. Each set is embedded once per round, however many evaluators
read it. A set is a TFRecord glob or a TFDS source (`tfds:NAME[/CONFIG]:SPLIT[@DATA_DIR]`,
`lit_keras.data.tfds_source`). Types (register more with `@register("name")`):

- `retrieval`: image↔text Recall@1/5/10 with every caption counted (`recall_at_k`); artifact: an
  HTML gallery of queries and their top matches.
- `zero_shot`: classification against prompt-ensembled class embeddings: top-1, top-5, mean
  per-class accuracy and the majority-class baseline; artifact: a confusion-matrix PNG. Without
  `classes`, a TFDS set's own label names.
- `fewshot`: linear probes fitted in closed form (`lit_keras.evaluation.fewshot`, big_vision's
  `fewshot_lsr`) on `shots` labelled images per class of `train_data`, tested on `data`:
  accuracy averaged over `seeds` draws, for each representation — `embedding` (the LiT image
  embedding) and `features` (the image tower's output before the projection: for a locked
  tower, the pretrained model's own features).

A spec's keys: `type`, `data` (a TFRecord glob or TFDS source; empty disables the evaluator),
`data_dir` (where relative class files and registered class lists are read), `classes` and
`templates` (`zero_shot`; specs of `lit_keras.evaluation.prompts`), `train_data`, `shots`,
`seeds`, `l2_reg`, `representations` (`fewshot`), `precomputed`, `precomputed_train` and
`embedding_dim` (read pre-computed image features instead of images), `batch_size`. Other keys
(e.g. `dataset`, `split`, `during_training`, read by programs) are ignored here.
"""
import os

import numpy as np

from lit_keras.data import pipeline
from lit_keras.data import schema
from lit_keras.data import tfds_source
from lit_keras.evaluation import fewshot
from lit_keras.evaluation import prompts
from lit_keras.evaluation import report
from lit_keras.evaluation import retrieval
from lit_keras.evaluation import zero_shot
from lit_keras.evaluation.embed import embed_eval_set

_TYPES = {}


def register(name):
  """Class decorator: makes an `Evaluator` subclass buildable as `type=name`."""

  def decorator(cls):
    _TYPES[name] = cls
    cls.type_name = name
    return cls

  return decorator


def types():
  return sorted(_TYPES)


class Evaluator:
  """One metric family over one image–text set.

  Args:
    name: the evaluator's name (metrics are reported under it).
    data: TFRecord glob of the set.
    image_size: the model's input resolution (central crop, resize).
    crop_fraction: central crop fraction.
    embedding_dim: with `data` holding pre-computed features of this size.
    batch_size: embedding batch size (64: the demo's evaluation of 224-px images through a
      locked tower peaks at 2.7 GB RSS, against 5.9 GB at 256, at the same speed on CPU).
    data_dir: directory of the set (for relative class files, registered class lists).
  """

  type_name = None
  spec_keys = ()  # the spec keys a subclass takes as constructor arguments
  needs_features = False  # the image tower's output before the projection

  def __init__(self, name, data, image_size, *, crop_fraction=1.0, embedding_dim=None,
               batch_size=64, data_dir=None):
    self.name = name
    self.data = data
    self.image_size = int(image_size)
    self.crop_fraction = float(crop_fraction)
    self.embedding_dim = int(embedding_dim) if embedding_dim else None
    self.batch_size = int(batch_size)
    self.data_dir = data_dir or None

  def source_key(self, data=None):
    """Sets with equal keys are embedded once, for every evaluator that reads them."""
    return (data or self.data, self.embedding_dim, self.image_size, self.crop_fraction)

  def sources(self):
    """The sets this evaluator reads: {data: whether their captions are needed}."""
    return {self.data: True}

  def run(self, embedded, model, out_dir=None, sets=None):
    """{metric: value} from `embed_eval_set`'s output for `data` (`sets`: the outputs for every
    set of `sources()`, by data); with `out_dir`, also writes the evaluator's human-readable
    files there and lists them under "files"."""
    raise NotImplementedError

  def _slug(self):
    return "".join(c if c.isalnum() else "_" for c in self.name.lower()).strip("_")


@register("retrieval")
class Retrieval(Evaluator):
  """Image↔text retrieval, every caption counted (the COCO protocol)."""

  ks = (1, 5, 10)

  def run(self, embedded, model, out_dir=None, sets=None):
    img, owner = embedded["image_emb"], embedded["owner"]
    out = retrieval.recall_at_k(img, embedded["text_emb"], owner, ks=self.ks)
    out.update(images=len(img), captions=len(embedded["text_emb"]))
    if out_dir and len(embedded["thumbs"]):
      # A gallery: the first caption of 8 evenly spaced images as text queries, and those images.
      first = np.searchsorted(owner, np.arange(len(img)))  # owner is sorted: first caption index
      picks = np.linspace(0, len(img) - 1, 8).astype(int)
      path = os.path.join(out_dir, f"gallery_{self._slug()}.html")
      report.retrieval_gallery(path, f"{self.name}: retrieval", embedded["texts"],
                               embedded["thumbs"], img, embedded["text_emb"],
                               [embedded["texts"][j] for j in first],
                               [(int(first[i]), int(i)) for i in picks])
      out["files"] = {"gallery_html": path}
    return out


@register("zero_shot")
class ZeroShot(Evaluator):
  """Zero-shot classification with a prompt ensemble (CLIP's: mean of normalised embeddings).

  Args (besides `Evaluator`'s):
    classes: class list spec (`prompts.class_names`); labels index into it. Images without a
      label (−1) are left out; `unlabelled` counts them.
    templates: template spec (`prompts.templates`), default `["{}"]`.
  """

  spec_keys = ("classes", "templates")

  def __init__(self, name, data, image_size, *, classes=None, templates="plain", **kwargs):
    super().__init__(name, data, image_size, **kwargs)
    if not classes:
      raise ValueError(f"zero-shot evaluator {name!r} needs `classes` (only a labelled TFDS "
                       "set names its own)")
    self.classes = prompts.class_names(classes, self.data_dir)
    self.templates = prompts.templates(templates or "plain", self.data_dir)

  def run(self, embedded, model, out_dir=None, sets=None):
    labels = embedded["labels"]
    labelled = labels != schema.NO_LABEL  # unlabelled images are left out (and counted)
    labels = labels[labelled]
    if len(labels) and (labels.min() < 0 or labels.max() >= len(self.classes)):
      raise ValueError(f"{self.name}: labels must index the {len(self.classes)} classes; found "
                       f"labels in [{labels.min()}, {labels.max()}] in {self.data}")
    if not len(labels):
      raise ValueError(f"{self.name}: no labelled image in {self.data}")
    cls = zero_shot.class_embeddings(model, self.classes, self.templates)
    out, preds = zero_shot.zero_shot_accuracy(model, None, labels, cls,
                                              image_emb=embedded["image_emb"][labelled])
    cm = report.confusion_matrix(labels, preds, len(self.classes))
    out.update(mean_per_class=float(np.nanmean(report.per_class_accuracy(cm))),
               majority_baseline=float(np.bincount(labels).max() / len(labels)),
               images=len(labels), unlabelled=int((~labelled).sum()), classes=len(self.classes),
               templates=len(self.templates))
    if out_dir:
      path = os.path.join(out_dir, f"confusion_{self._slug()}.png")
      names = [c if isinstance(c, str) else c[0] for c in self.classes]
      report.plot_confusion(cm, names, path, f"{self.name}: zero-shot")
      out["files"] = {"confusion_png": path}
    return out


@register("fewshot")
class FewShot(Evaluator):
  """Few-shot linear probes of the image representations (`lit_keras.evaluation.fewshot`).

  Args (besides `Evaluator`'s):
    train_data: the labelled set the shots are drawn from (`data` is the test set).
    shots: images per class to fit on.
    seeds: how many draws of the shots (seed 0, 1, …); the metric is their mean.
    l2_reg: the ridge penalty λ (big_vision's LiT configs: 2¹⁰).
    representations: "embedding" (the LiT image embedding) and/or "features" (the image
      tower's output; of a locked tower: its pretrained features).

  Metrics: `{representation}_{k}shot` (mean accuracy over the seeds) for every k.
  """

  spec_keys = ("train_data", "shots", "seeds", "l2_reg", "representations")
  REPRESENTATIONS = ("embedding", "features")

  def __init__(self, name, data, image_size, *, train_data=None, shots=(1, 5, 10, 25), seeds=3,
               l2_reg=2.0 ** 10, representations=("embedding", "features"), **kwargs):
    super().__init__(name, data, image_size, **kwargs)
    if not train_data:
      raise ValueError(f"few-shot evaluator {name!r} needs `train_data` (the labelled set the "
                       "shots are drawn from)")
    representations = ([representations] if isinstance(representations, str)
                        else list(representations))
    bad = [r for r in representations if r not in self.REPRESENTATIONS]
    if bad or not representations:
      raise ValueError(f"few-shot evaluator {name!r}: representations {bad or '[]'}; expected "
                       f"some of {list(self.REPRESENTATIONS)}")
    self.train_data = train_data
    self.shots = tuple(int(k) for k in shots)
    self.seeds, self.l2_reg = int(seeds), float(l2_reg)
    self.representations = tuple(representations)
    self.needs_features = "features" in self.representations

  def sources(self):
    return {self.train_data: False, self.data: False}

  def run(self, embedded, model, out_dir=None, sets=None):
    train = sets[self.train_data]
    out = {}
    for rep in self.representations:
      key = "image_emb" if rep == "embedding" else "image_features"
      accs = fewshot.fewshot_accuracy(train[key], train["labels"], embedded[key],
                                      embedded["labels"], self.shots, self.seeds, self.l2_reg)
      out.update({f"{rep}_{k}shot": float(np.mean(v)) for k, v in accs.items()})
    out.update(images=int(np.sum(embedded["labels"] >= 0)),
               train_images=int(np.sum(train["labels"] >= 0)), seeds=self.seeds)
    return out


def build(specs, image_size, crop_fraction=1.0):
  """Evaluators from `{name: spec}` (a dict or ConfigDict); specs with an empty `data` are
  skipped. Raises ValueError on an unknown type."""
  out = []
  for name, spec in dict(specs).items():
    spec = dict(spec)
    kind = spec.get("type")
    if kind not in _TYPES:
      raise ValueError(f"evaluator {name!r}: unknown type {kind!r}; expected one of {types()}")
    data = spec.get("precomputed") or spec.get("data")
    if not data:
      continue
    cls = _TYPES[kind]
    kwargs = dict(crop_fraction=crop_fraction, batch_size=spec.get("batch_size") or 64,
                  data_dir=spec.get("data_dir") or None,
                  embedding_dim=spec.get("embedding_dim") if spec.get("precomputed") else None)
    kwargs.update({k: spec[k] for k in cls.spec_keys if spec.get(k)})
    if spec.get("precomputed") and spec.get("train_data"):
      kwargs["train_data"] = spec.get("precomputed_train") or spec["train_data"]
    if kind == "zero_shot" and not spec.get("classes") and tfds_source.is_tfds(spec.get("data")):
      names = tfds_source.class_names(spec["data"])
      if names and all(n.isdigit() for n in names):
        raise ValueError(f"evaluator {name!r}: {spec['data']} names its classes only by number "
                         "here (its prepared metadata holds the names); pass `classes`")
      kwargs["classes"] = names
    out.append(cls(name, data, image_size, **kwargs))
  return out


def evaluate(evaluators, model, out_dir=None, progress=False, log=None, strategy=None,
             jit_compile=None):
  """Runs `evaluators` on `model`; each set is embedded once, its work shared by the replicas of
  `strategy` (`embed_eval_set`). With `out_dir`, also writes each evaluator's artifacts there
  (their paths are returned under "files").

  Returns:
    {evaluator name: {metric: value, ..., "data": glob[, "files": {kind: path}]}}.
  """
  needs = {}  # source key → (evaluator, data, captions needed, features needed)
  for ev in evaluators:
    for data, captions in ev.sources().items():
      key = ev.source_key(data)
      _, _, c, f = needs.get(key, (ev, data, False, False))
      needs[key] = (needs.get(key, (ev,))[0], data, c or captions, f or ev.needs_features)
  cache, results = {}, {}
  for key, (ev, data, captions, features) in needs.items():
    if log:
      log(f"embedding {data}")
    with pipeline.naming_corruption(data, ev.embedding_dim):
      cache[key] = embed_eval_set(
          model, data, ev.image_size, ev.batch_size, crop_fraction=ev.crop_fraction,
          embedding_dim=ev.embedding_dim, thumbnail_size=32 if out_dir and captions else 0,
          progress=progress, strategy=strategy, jit_compile=jit_compile, features=features,
          texts=captions)
  for ev in evaluators:
    sets = {data: cache[ev.source_key(data)] for data in ev.sources()}
    metrics = ev.run(cache[ev.source_key()], model, out_dir, sets=sets)
    metrics["data"] = ev.data
    results[ev.name] = metrics
  return results
