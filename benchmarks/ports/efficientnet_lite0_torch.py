"""Independent reference: EfficientNet-Lite0 in PyTorch (torch.load + torch.nn.functional, TF-same
padding as EfficientNet-PyTorch's Conv2dStaticSamePadding) on the inputs saved by
`efficientnet_lite0_ours.py`; prints the max |logit difference| and both top-1s.

Needs only numpy and torch (e.g. a venv with `pip install torch==2.13.0 numpy`):
  python benchmarks/ports/efficientnet_lite0_torch.py /tmp/lite0_ours.npz
"""
import math
import sys

import numpy as np
import torch
import torch.nn.functional as F

BLOCKS = ((1, 3, 1, 1, 32, 16), (2, 3, 2, 6, 16, 24), (2, 5, 2, 6, 24, 40), (3, 3, 2, 6, 40, 80),
          (3, 5, 1, 6, 80, 112), (4, 5, 2, 6, 112, 192), (1, 3, 1, 6, 192, 320))


def conv_same(x, w, stride=1, groups=1):
  ih, iw = x.shape[-2:]
  kh, kw = w.shape[-2:]
  ph = max((math.ceil(ih / stride) - 1) * stride + kh - ih, 0)
  pw = max((math.ceil(iw / stride) - 1) * stride + kw - iw, 0)
  x = F.pad(x, [pw // 2, pw - pw // 2, ph // 2, ph - ph // 2])
  return F.conv2d(x, w, stride=stride, groups=groups)


def bn(x, sd, p):
  return F.batch_norm(x, sd[p + ".running_mean"], sd[p + ".running_var"], sd[p + ".weight"],
                      sd[p + ".bias"], training=False, eps=1e-3)


def forward(sd, x):
  x = F.relu6(bn(conv_same(x, sd["_conv_stem.weight"], 2), sd, "_bn0"))
  i = 0
  for repeats, k, s, e, cin, cout in BLOCKS:
    for r in range(repeats):
      p = f"_blocks.{i}."
      stride, c_in = (s, cin) if r == 0 else (1, cout)
      h = x
      if e != 1:
        h = F.relu6(bn(conv_same(h, sd[p + "_expand_conv.weight"]), sd, p + "_bn0"))
      h = F.relu6(bn(conv_same(h, sd[p + "_depthwise_conv.weight"], stride, groups=h.shape[1]),
                     sd, p + "_bn1"))
      h = bn(conv_same(h, sd[p + "_project_conv.weight"]), sd, p + "_bn2")
      x = x + h if stride == 1 and c_in == cout else h
      i += 1
  x = F.relu6(bn(conv_same(x, sd["_conv_head.weight"]), sd, "_bn1"))
  return F.linear(x.mean((2, 3)), sd["_fc.weight"], sd["_fc.bias"])


def main(path):
  d = np.load(path)
  sd = torch.load(str(d["pth"]), map_location="cpu", weights_only=True)
  x = torch.from_numpy(d["images"]).permute(0, 3, 1, 2).double() * 255.0
  x = (x - 127.0) / 128.0
  with torch.no_grad():
    ref = forward({k: v.double() for k, v in sd.items()}, x).numpy()
  ours = d["logits"]
  for p, a, b in zip(d["photos"], ours, ref):
    pa, pb = np.exp(a - a.max()), np.exp(b - b.max())
    pa, pb = pa / pa.sum(), pb / pb.sum()
    print(f"{p}: top-1 ours {a.argmax()} (p={pa.max():.4f}), torch {b.argmax()} (p={pb.max():.4f})")
  print(f"max |logit difference| (ours float32 vs torch float64): {np.abs(ours - ref).max():.2e}")


if __name__ == "__main__":
  main(sys.argv[1] if len(sys.argv) > 1 else "/tmp/lite0_ours.npz")
