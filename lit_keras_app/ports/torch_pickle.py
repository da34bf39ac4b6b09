"""Read a legacy (pre-1.6, non-zip) PyTorch `.pth` state dict into NumPy — without torch.

The legacy format is a sequence of pickles — magic number, protocol version, system info, the
object (tensors refer to storages by persistent id), the list of storage keys — followed by each
storage's raw bytes (an int64 element count, then the little-endian data).

Security: `pickle.load` on an untrusted file runs arbitrary code. This reader uses an Unpickler
whose `find_class` admits only `collections.OrderedDict`, torch's tensor-rebuild functions and
storage types — each mapped to a harmless local stand-in — and refuses every other global.
"""
import collections
import pickle
import struct

import numpy as np

MAGIC_NUMBER = 0x1950a86a20f9469cfc6c
PROTOCOL_VERSION = 1001

_STORAGE_DTYPES = {
    "FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
    "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16,
    "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_,
}


class _StorageType:

  def __init__(self, name):
    self.dtype = np.dtype(_STORAGE_DTYPES[name])


class _Storage:

  def __init__(self, key, dtype, size):
    self.key, self.dtype, self.size, self.data = key, dtype, size, None


class _TensorRef:
  """A tensor view of a storage, materialised once the storage bytes have been read."""

  def __init__(self, storage, offset, shape, stride):
    self.storage, self.offset, self.shape, self.stride = storage, offset, tuple(shape), stride

  def to_numpy(self):
    data = self.storage.data
    item = data.dtype.itemsize
    if not self.shape:
      return data[self.offset].copy()
    view = np.lib.stride_tricks.as_strided(
        data[self.offset:], shape=self.shape, strides=[s * item for s in self.stride])
    return np.ascontiguousarray(view).copy()  # own, C-contiguous copy


def _rebuild_tensor_v2(storage, offset, size, stride, requires_grad=False, hooks=None,
                       metadata=None):
  del requires_grad, hooks, metadata
  return _TensorRef(storage, offset, size, stride)


def _rebuild_tensor(storage, offset, size, stride):
  return _TensorRef(storage, offset, size, stride)


_ALLOWED_GLOBALS = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
}


class _RestrictedUnpickler(pickle.Unpickler):

  def __init__(self, file, storages):
    super().__init__(file)
    self._storages = storages

  def find_class(self, module, name):
    if (module, name) in _ALLOWED_GLOBALS:
      return _ALLOWED_GLOBALS[(module, name)]
    if module == "torch" and name in _STORAGE_DTYPES:
      return _StorageType(name)
    raise pickle.UnpicklingError(f"refusing to load global '{module}.{name}': only tensors, "
                                 "storages and plain containers are allowed")

  def persistent_load(self, pid):
    if not isinstance(pid, tuple) or pid[0] != "storage":
      raise pickle.UnpicklingError(f"unsupported persistent id {pid!r}")
    _, storage_type, key, _, size = pid[:5]
    if key not in self._storages:
      self._storages[key] = _Storage(key, storage_type.dtype, size)
    return self._storages[key]


def _materialise(obj):
  if isinstance(obj, _TensorRef):
    return obj.to_numpy()
  if isinstance(obj, dict):
    return collections.OrderedDict((k, _materialise(v)) for k, v in obj.items())
  if isinstance(obj, (list, tuple)):
    return type(obj)(_materialise(v) for v in obj)
  return obj


def load_legacy_state_dict(path):
  """Returns the file's object (usually an OrderedDict name → np.ndarray)."""
  storages = {}
  with open(path, "rb") as f:
    magic = _RestrictedUnpickler(f, storages).load()
    if magic != MAGIC_NUMBER:
      raise ValueError(f"{path} is not a legacy PyTorch file (zip-format files are not supported "
                       "by this reader)")
    protocol, sys_info = [_RestrictedUnpickler(f, storages).load() for _ in range(2)]
    if protocol != PROTOCOL_VERSION:
      raise ValueError(f"{path}: unsupported protocol version {protocol}")
    if not sys_info.get("little_endian", True):
      raise ValueError(f"{path}: big-endian files are not supported")
    obj = _RestrictedUnpickler(f, storages).load()
    keys = _RestrictedUnpickler(f, storages).load()
    for key in keys:
      storage = storages[key]
      (count,) = struct.unpack("<q", f.read(8))
      nbytes = count * storage.dtype.itemsize
      raw = f.read(nbytes)
      if len(raw) != nbytes:
        raise ValueError(f"{path}: truncated storage {key} ({len(raw)} of {nbytes} bytes)")
      storage.data = np.frombuffer(raw, dtype=storage.dtype.newbyteorder("<"))
  missing = [k for k, s in storages.items() if s.data is None]
  if missing:
    raise ValueError(f"{path}: storages without data: {missing[:5]}")
  return _materialise(obj)
