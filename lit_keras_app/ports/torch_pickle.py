"""Read a legacy (pre-1.6, non-zip) PyTorch `.pth` state dict into NumPy — without torch.

The legacy format is a sequence of pickles — magic number, protocol version, system info, the
object (tensors refer to storages by persistent id), the list of storage keys — followed by each
storage's raw bytes (an int64 element count, then the little-endian data).

Security — the file is treated as hostile input:
- `pickle.load` on an untrusted file runs arbitrary code. This reader's Unpickler admits only
  `collections.OrderedDict`, torch's tensor-rebuild functions and storage types — each mapped to a
  harmless local stand-in — and refuses every other global.
- Nothing is read beyond the file: the whole file is read once (its length bounds every later
  allocation) and each storage's element count is checked against the bytes that remain.
- No view is made before it is checked: every tensor's offset, shape and strides must address
  elements inside its storage (no negative strides or offsets, no index past the end), a tensor
  may not hold more elements than its storage, and all the tensors together may hold at most
  `MAX_VIEW_AMPLIFICATION` times the bytes of the file's storages (a few views of one storage,
  a weight and its transpose, pass; thousands of overlapping views, a memory bomb, do not;
  identical views, tied weights, are materialised once and shared). Views are then taken with NumPy indexing, which checks bounds again.
- Every malformed or truncated file ends in `LegacyCheckpointError` (a `ValueError`) naming the
  file and, where one is at fault, the tensor or storage.
"""
import collections
import io
import math
import pickle
import pickletools
import struct

import numpy as np

MAGIC_NUMBER = 0x1950a86a20f9469cfc6c
PROTOCOL_VERSION = 1001
_ZIP_MAGIC = b"PK\x03\x04"
MAX_VIEW_AMPLIFICATION = 4

_STORAGE_DTYPES = {
    "FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
    "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16,
    "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_,
}


class LegacyCheckpointError(pickle.UnpicklingError, ValueError):
  """A legacy .pth file that is malformed, truncated, hostile or of another format."""


class _StorageType:

  def __init__(self, name):
    self.name, self.dtype = name, np.dtype(_STORAGE_DTYPES[name])


class _Storage:

  def __init__(self, key, dtype, size):
    self.key, self.dtype, self.size, self.data = key, dtype, size, None


def _is_int(value):
  return isinstance(value, int) and not isinstance(value, bool)


class _TensorRef:
  """A tensor view of a storage, materialised (after bounds checks) once its bytes are read."""

  def __init__(self, storage, offset, shape, stride):
    if not isinstance(storage, _Storage):
      raise LegacyCheckpointError(f"a tensor's storage is a {type(storage).__name__}")
    if not (isinstance(shape, (tuple, list)) and isinstance(stride, (tuple, list))
            and all(_is_int(v) for v in (offset, *shape, *stride))):
      raise LegacyCheckpointError(
          f"a tensor's offset/shape/stride must be integers: {offset!r}, {shape!r}, {stride!r}")
    self.storage, self.offset, self.shape, self.stride = storage, offset, tuple(shape), tuple(stride)

  def key(self):
    return (self.storage.key, self.offset, self.shape, self.stride)

  def numel(self):
    return math.prod(self.shape)

  def check(self, name):
    """Raises unless every element this view addresses lies inside its storage."""
    count = len(self.storage.data)
    where = f"tensor {name!r} (storage {self.storage.key!r} of {count} elements)"
    if len(self.stride) != len(self.shape):
      raise LegacyCheckpointError(f"{where}: {len(self.shape)} dims but {len(self.stride)} strides")
    if self.offset < 0 or any(d < 0 for d in self.shape) or any(s < 0 for s in self.stride):
      raise LegacyCheckpointError(f"{where}: negative offset, size or stride "
                                  f"(offset {self.offset}, shape {self.shape}, "
                                  f"stride {self.stride})")
    numel = self.numel()
    if numel > count:
      raise LegacyCheckpointError(f"{where}: shape {self.shape} holds {numel} elements, more "
                                  "than its storage")
    if numel:
      last = self.offset + sum((d - 1) * s for d, s in zip(self.shape, self.stride))
      if last >= count:
        raise LegacyCheckpointError(f"{where}: offset {self.offset}, shape {self.shape}, stride "
                                    f"{self.stride} address element {last}, past the end")

  def to_numpy(self):
    """An own, C-contiguous copy (call `check` first); NumPy bounds-checks the indices again."""
    contiguous = tuple(math.prod(self.shape[i + 1:]) for i in range(len(self.shape)))
    if all(s == c for d, s, c in zip(self.shape, self.stride, contiguous) if d > 1):
      flat = self.storage.data[self.offset:self.offset + self.numel()]
      return flat.reshape(self.shape).astype(flat.dtype.newbyteorder("="), copy=True)
    index = np.full((), self.offset, dtype=np.int64)
    for d, s in zip(self.shape, self.stride):
      index = index[..., None] + np.arange(d, dtype=np.int64) * s
    return self.storage.data[index].astype(self.storage.data.dtype.newbyteorder("="), copy=True)


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
    raise LegacyCheckpointError(f"refusing to load global '{module}.{name}': only tensors, "
                                "storages and plain containers are allowed")

  def persistent_load(self, pid):
    if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
      raise LegacyCheckpointError(f"unsupported persistent id {pid!r}")
    _, storage_type, key, _, size = pid[:5]
    if not (isinstance(storage_type, _StorageType) and isinstance(key, str) and _is_int(size)
            and size >= 0):
      raise LegacyCheckpointError(f"malformed storage reference {pid!r}")
    storage = self._storages.setdefault(key, _Storage(key, storage_type.dtype, size))
    if storage.dtype != storage_type.dtype or storage.size != size:
      raise LegacyCheckpointError(f"storage {key!r} is referenced with two types or sizes")
    return storage


def _tensor_refs(obj, name=""):
  """Yields (name, ref) for every tensor in the object, depth first."""
  if isinstance(obj, _TensorRef):
    yield name, obj
  elif isinstance(obj, dict):
    for k, v in obj.items():
      yield from _tensor_refs(v, f"{name}.{k}" if name else str(k))
  elif isinstance(obj, (list, tuple)):
    for i, v in enumerate(obj):
      yield from _tensor_refs(v, f"{name}[{i}]")


def _materialise(obj, arrays):
  if isinstance(obj, _TensorRef):
    return arrays[obj.key()]
  if isinstance(obj, dict):
    return collections.OrderedDict((k, _materialise(v, arrays)) for k, v in obj.items())
  if isinstance(obj, (list, tuple)):
    return type(obj)(_materialise(v, arrays) for v in obj)
  return obj


def _read_storages(data, pos, keys, storages):
  if not (isinstance(keys, list) and all(isinstance(k, str) for k in keys)):
    raise LegacyCheckpointError(f"the storage key list is malformed: {str(keys)[:80]}")
  if len(set(keys)) != len(keys):
    raise LegacyCheckpointError("the storage key list names a storage twice")
  for key in keys:
    if key not in storages:
      raise LegacyCheckpointError(f"storage {key!r} is listed but no tensor refers to it")
    storage = storages[key]
    if pos + 8 > len(data):
      raise LegacyCheckpointError(f"truncated before storage {key!r}")
    (count,) = struct.unpack_from("<q", data, pos)
    pos += 8
    if count != storage.size:
      raise LegacyCheckpointError(f"storage {key!r} states {count} elements, its reference "
                                  f"{storage.size}")
    nbytes = count * storage.dtype.itemsize
    if nbytes > len(data) - pos:
      raise LegacyCheckpointError(f"truncated storage {key!r} ({len(data) - pos} of {nbytes} "
                                  "bytes left in the file)")
    storage.data = np.frombuffer(data, dtype=storage.dtype.newbyteorder("<"), count=count,
                                 offset=pos)
    pos += nbytes
  missing = [k for k, s in storages.items() if s.data is None]
  if missing:
    raise LegacyCheckpointError(f"storages without data: {missing[:5]}")


def _unpickle_next(f, storages):
  """Loads the pickle at f's position. Its opcodes are walked first, so that nothing the file
  claims is allocated before it is checked: pickletools reads each length-prefixed argument from
  the bytes that are there; memo indices must be sequential (as every pickler writes them; a
  large index would make the Unpickler grow its memo to that size) and frames must fit in the
  file. Then it is unpickled with the restricted Unpickler."""
  start, puts = f.tell(), 0
  for opcode, arg, pos in pickletools.genops(f):
    if opcode.name in ("PUT", "BINPUT", "LONG_BINPUT", "MEMOIZE"):
      if opcode.name != "MEMOIZE" and int(arg) > puts:
        raise LegacyCheckpointError(f"memo index {arg} out of sequence at byte {pos}")
      puts += 1
    elif opcode.name == "FRAME" and arg > len(f.getbuffer()) - f.tell():
      raise LegacyCheckpointError(f"a frame of {arg} bytes at byte {pos} runs past the file")
    elif opcode.name == "STOP":
      break
  end = f.tell()
  f.seek(start)
  obj = _RestrictedUnpickler(f, storages).load()
  if f.tell() != end:
    raise LegacyCheckpointError(f"a pickle ends at byte {f.tell()}, not {end}")
  return obj


def _load(data):
  if data[:4] == _ZIP_MAGIC:
    raise LegacyCheckpointError("this is a zip-format PyTorch file (torch >= 1.6); this reader "
                                "reads the legacy format only: re-save it with "
                                "torch.save(..., _use_new_zipfile_serialization=False)")
  storages = {}
  f = io.BytesIO(data)  # nothing is read from outside these bytes
  magic = _unpickle_next(f, storages)
  if magic != MAGIC_NUMBER:
    raise LegacyCheckpointError("not a legacy PyTorch file (wrong magic number)")
  protocol, sys_info = [_unpickle_next(f, storages) for _ in range(2)]
  if protocol != PROTOCOL_VERSION:
    raise LegacyCheckpointError(f"unsupported protocol version {protocol!r}")
  if not isinstance(sys_info, dict) or not sys_info.get("little_endian", True):
    raise LegacyCheckpointError("big-endian or malformed system info: not supported")
  obj = _unpickle_next(f, storages)
  keys = _unpickle_next(f, storages)
  _read_storages(data, f.tell(), keys, storages)
  budget = MAX_VIEW_AMPLIFICATION * sum(len(s.data) * s.dtype.itemsize for s in storages.values())
  arrays = {}
  for name, ref in _tensor_refs(obj):
    if ref.key() in arrays:
      continue  # the same view twice (tied weights): one array
    ref.check(name)
    budget -= ref.numel() * ref.storage.dtype.itemsize
    if budget < 0:
      raise LegacyCheckpointError(
          f"tensor {name!r}: the tensors hold more than {MAX_VIEW_AMPLIFICATION}x the bytes of "
          "the file's storages (overlapping views)")
    arrays[ref.key()] = ref.to_numpy()
  return _materialise(obj, arrays)


def load_legacy_state_dict(path):
  """Returns the file's object (usually an OrderedDict name → np.ndarray).

  Raises:
    LegacyCheckpointError: the file is not a well-formed legacy PyTorch file, or refers to
      anything but tensors, storages and plain containers.
  """
  with open(path, "rb") as f:
    data = f.read()
  try:
    return _load(data)
  except LegacyCheckpointError as e:
    raise LegacyCheckpointError(f"{path}: {e}") from None
  except (pickle.UnpicklingError, EOFError, ValueError, TypeError, KeyError, IndexError,
          AttributeError, struct.error, OverflowError, RecursionError, UnicodeDecodeError) as e:
    raise LegacyCheckpointError(
        f"{path}: not a readable legacy PyTorch file ({type(e).__name__}: {e})") from e
