"""The torch-free reader of legacy .pth files: correctness on a hand-written file, and safety."""
import collections
import io
import os
import pickle
import struct

import numpy as np
import pytest

from lit_keras_app.ports import torch_pickle


def _legacy_bytes(tensors, storages):
  """tensors: name → (storage key, offset, shape, stride); storages: key → np array (1-D)."""
  buf = io.BytesIO()
  for header in (torch_pickle.MAGIC_NUMBER, torch_pickle.PROTOCOL_VERSION,
                 {"protocol_version": 1001, "little_endian": True,
                  "type_sizes": {"short": 2, "int": 4, "long": 4}}):
    pickle.dump(header, buf, protocol=2)
  # Hand-assemble the main pickle with pickle opcodes for GLOBAL/BINPERSID (no torch needed).
  body = [b"\x80\x02", b"ccollections\nOrderedDict\n", b")R"]
  body.append(b"(")
  storage_type = {np.float32: b"FloatStorage", np.int64: b"LongStorage"}
  for name, (key, offset, shape, stride) in tensors.items():
    arr = storages[key]
    body.append(pickle.dumps(name, protocol=2)[2:-1])
    body.append(b"ctorch._utils\n_rebuild_tensor_v2\n(")
    body.append(b"(" + pickle.dumps("storage", protocol=2)[2:-1]
                + b"ctorch\n" + storage_type[arr.dtype.type] + b"\n"
                + pickle.dumps(key, protocol=2)[2:-1] + pickle.dumps("cpu", protocol=2)[2:-1]
                + pickle.dumps(arr.size, protocol=2)[2:-1] + b"Nt" + b"Q")
    for value in (offset, tuple(shape), tuple(stride), False):
      body.append(pickle.dumps(value, protocol=2)[2:-1])
    body.append(b"ccollections\nOrderedDict\n)R")
    body.append(b"tR")
  body.append(b"u.")
  buf.write(b"".join(body))
  pickle.dump(list(storages), buf, protocol=2)
  for arr in storages.values():
    buf.write(struct.pack("<q", arr.size))
    buf.write(arr.astype(arr.dtype.newbyteorder("<")).tobytes())
  return buf.getvalue()


def test_reads_views_offsets_and_dtypes(tmp_path):
  base = np.arange(24, dtype=np.float32)
  storages = {"100": base, "200": np.array([7, -3], dtype=np.int64)}
  tensors = collections.OrderedDict([
      ("w", ("100", 0, (2, 3, 4), (12, 4, 1))),
      ("w_t", ("100", 0, (4, 6), (1, 4))),  # a transposed (non-contiguous) view
      ("tail", ("100", 20, (4,), (1,))),
      ("count", ("200", 1, (), ())),
  ])
  path = tmp_path / "legacy.pth"
  path.write_bytes(_legacy_bytes(tensors, storages))
  sd = torch_pickle.load_legacy_state_dict(str(path))
  assert list(sd) == ["w", "w_t", "tail", "count"]
  np.testing.assert_array_equal(sd["w"], base.reshape(2, 3, 4))
  np.testing.assert_array_equal(sd["w_t"], base.reshape(6, 4).T)
  np.testing.assert_array_equal(sd["tail"], base[20:])
  assert sd["count"] == -3 and sd["w"].dtype == np.float32 and sd["w_t"].flags["C_CONTIGUOUS"]


def test_refuses_arbitrary_globals(tmp_path):
  buf = io.BytesIO()
  for header in (torch_pickle.MAGIC_NUMBER, torch_pickle.PROTOCOL_VERSION,
                 {"little_endian": True}):
    pickle.dump(header, buf, protocol=2)
  marker = tmp_path / "pwned"
  buf.write(b"\x80\x02cos\nsystem\n" + pickle.dumps(f"touch {marker}", protocol=2)[2:-1]
            + b"\x85R.")
  path = tmp_path / "evil.pth"
  path.write_bytes(buf.getvalue())
  with pytest.raises(pickle.UnpicklingError, match="refusing to load global 'os.system'"):
    torch_pickle.load_legacy_state_dict(str(path))
  assert not os.path.exists(marker)


def test_rejects_truncated_and_foreign_files(tmp_path):
  storages = {"1": np.arange(6, dtype=np.float32)}
  data = _legacy_bytes({"w": ("1", 0, (6,), (1,))}, storages)
  (tmp_path / "trunc.pth").write_bytes(data[:-8])
  with pytest.raises(ValueError, match="truncated"):
    torch_pickle.load_legacy_state_dict(str(tmp_path / "trunc.pth"))
  (tmp_path / "zip.pth").write_bytes(pickle.dumps(123))
  with pytest.raises(ValueError, match="not a legacy PyTorch file"):
    torch_pickle.load_legacy_state_dict(str(tmp_path / "zip.pth"))
