"""Images decoded from disk on demand, behind a byte-budgeted LRU cache, served as batches.

``load_arrays`` decodes a whole split into one float32 array: at 1024 px an MVTec category is
several GB per process. An ``ImageSource`` instead holds only the ``Sample`` file references and
the size and decodes an image when it is asked for; it looks like the ``(N, 3, S, S)`` float32 CPU
tensor it replaces (``len``, ``shape``, ``source[i]``, ``source[index tensor]``, ``source[a:b]``,
iteration), so training and evaluation code indexes it as before. Values are bit-identical to
``load_arrays`` (the same ``read_image`` decodes them).

Memory: decoded images are kept in an ``ImageCache`` shared by the sources of a trial, a
least-recently-used cache whose stored bytes never exceed ``budget_bytes`` (``runtime.cache_mb``;
0 = no cache, every access decodes again; a budget holding every image = the old everything-in-RAM
behaviour, decoding each image once). An 8-bit image is stored as the uint8 values ``k`` it was
decoded from (``read_image`` returns ``float32(k) / 255``, which is recovered exactly), a quarter
of its float32 size; anything else (16-bit images, synthesised anomalies) is stored as float32.
``compact`` checks the round trip on every image, so what the cache returns always equals what was
decoded.

Batches: ``source.batches(index_batches)`` yields ``source[idx]`` for each index list, in order.
With ``num_workers > 0`` a ``torch.utils.data.DataLoader`` decodes in that many worker processes
(``runtime.num_workers``); workers read the cache as it was when they started (fork) but do not
fill it (a worker's insertions would be lost and cost the budget once per worker); the main
process inserts what they decoded. An epoch whose images are all cached is served in-process.

``SpilledImages`` is the same interface over the rows of a ``.npy`` file (used for the validation
set, whose synthetic anomalies exist nowhere else): rows are read with ``os.pread`` (no memory
map, so rows read once do not stay resident) through the same cache. No Ray here.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Hashable, Union

import numpy as np
import torch

from suite.data.common import DatasetNotFoundError, Sample, read_image, read_mask

MB = 1024 * 1024


# ----------------------------------------------------------------------------------------------
# compact storage


def compact(image: np.ndarray) -> np.ndarray:
    """The smallest exact representation of a float32 image: uint8 ``k`` when
    ``float32(k) / 255 == image`` for every value (8-bit decodes), else a float32 copy."""
    image = np.asarray(image, dtype=np.float32)
    as_bytes = np.rint(image * 255.0)
    if np.all((as_bytes >= 0) & (as_bytes <= 255)):
        u8 = as_bytes.astype(np.uint8)
        if np.array_equal(expand(u8), image):
            return u8
    return image.copy()


def expand(stored: np.ndarray) -> np.ndarray:
    """Inverse of ``compact``: float32, a new array (callers may write into it)."""
    if stored.dtype == np.uint8:
        return stored.astype(np.float32) / 255.0  # the same float32 division as image_to_rgb_float
    return stored.astype(np.float32, copy=True)


# ----------------------------------------------------------------------------------------------
# the cache


class ImageCache:
    """Least-recently-used map key -> stored image with ``nbytes`` <= ``budget_bytes`` at all times.

    ``put`` evicts the least recently used entries until the new one fits; an entry larger than the
    whole budget is not stored. ``get`` marks an entry most recently used. Counters: ``hits``,
    ``misses``, ``evictions``, ``peak_nbytes``. Thread-safe: training reads batches ahead in a
    prefetch thread (``suite.throughput``) while the step reads donor images from the same cache.
    """

    def __init__(self, budget_bytes: int):
        if budget_bytes < 0:
            raise ValueError(f"cache budget must be >= 0 bytes, got {budget_bytes}")
        self.budget_bytes = int(budget_bytes)
        self._entries: OrderedDict[Hashable, np.ndarray] = OrderedDict()
        self.nbytes = 0
        self.peak_nbytes = 0
        self.hits = self.misses = self.evictions = 0
        self._lock = threading.RLock()

    @classmethod
    def from_mb(cls, cache_mb: float) -> "ImageCache":
        return cls(int(cache_mb * MB))

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._entries

    def get(self, key: Hashable) -> np.ndarray | None:
        with self._lock:
            stored = self._entries.get(key)
            if stored is None:
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return stored

    def touch(self, key: Hashable) -> None:
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)

    def put(self, key: Hashable, stored: np.ndarray) -> bool:
        """Store ``stored`` (kept by reference: do not modify it); True when it is in the cache."""
        size = int(stored.nbytes)
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                return True
            if size > self.budget_bytes:
                return False
            while self.nbytes + size > self.budget_bytes:
                _, old = self._entries.popitem(last=False)
                self.nbytes -= int(old.nbytes)
                self.evictions += 1
            self._entries[key] = stored
            self.nbytes += size
            self.peak_nbytes = max(self.peak_nbytes, self.nbytes)
            return True

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self.nbytes = 0

    def stats(self) -> dict[str, float]:
        return {"cache_budget_mb": self.budget_bytes / MB, "cache_mb": self.nbytes / MB,
                "cache_peak_mb": self.peak_nbytes / MB, "cache_entries": len(self._entries),
                "cache_hits": self.hits, "cache_misses": self.misses, "cache_evictions": self.evictions}

    def __getstate__(self) -> dict[str, Any]:
        # A pickled cache (spawned DataLoader workers, Ray) travels empty: its contents can be re-read.
        state = dict(self.__dict__)
        state["_entries"] = OrderedDict()
        state["nbytes"] = 0
        del state["_lock"]  # locks do not pickle; a new one is made on arrival
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.RLock()


# ----------------------------------------------------------------------------------------------
# sources

Index = Union[int, slice, Sequence[int], np.ndarray, torch.Tensor]


def _in_worker() -> bool:
    return torch.utils.data.get_worker_info() is not None


class ImageSource:
    """A read-only, tensor-like ``(N, 3, S, S)`` float32 image collection (see the module doc).

    Subclasses give ``_key(i)`` (the cache key) and ``_load(i)`` (a float32 ``(3, S, S)`` array).
    """

    def __init__(self, n: int, image_size: int, cache: ImageCache | None = None, num_workers: int = 0):
        if image_size < 1:
            raise ValueError(f"image_size must be >= 1, got {image_size}")
        if num_workers < 0:
            raise ValueError(f"num_workers must be >= 0, got {num_workers}")
        self._n = int(n)
        self.image_size = int(image_size)
        self.cache = cache if cache is not None else ImageCache(0)
        self.num_workers = int(num_workers)

    # -- subclass hooks
    def _key(self, i: int) -> Hashable:
        raise NotImplementedError

    def _load(self, i: int) -> np.ndarray:
        raise NotImplementedError

    # -- tensor-like surface
    def __len__(self) -> int:
        return self._n

    @property
    def shape(self) -> torch.Size:
        return torch.Size((self._n, 3, self.image_size, self.image_size))

    @property
    def dtype(self) -> torch.dtype:
        return torch.float32

    @property
    def nbytes(self) -> int:
        """Bytes of the whole collection as float32 (what ``load_arrays`` would hold)."""
        return self._n * 3 * self.image_size * self.image_size * 4

    def __array__(self, *args, **kwargs):
        # np.asarray(source) would silently decode everything: make that an explicit choice.
        raise TypeError(f"{type(self).__name__} is decoded on demand; use source[:] to load all "
                        f"{self._n} images ({self.nbytes / MB:.0f} MB) at once")

    def image(self, i: int) -> np.ndarray:
        """Image ``i`` as a new float32 ``(3, S, S)`` array, from the cache or decoded."""
        i = self._check(i)
        key = self._key(i)
        stored = self.cache.get(key)
        if stored is not None:
            return expand(stored)
        image = self._load(i)
        if not _in_worker():
            self.cache.put(key, compact(image))
        return image

    def indices(self, index: Index) -> list[int]:
        if isinstance(index, slice):
            return list(range(self._n))[index]
        if isinstance(index, torch.Tensor):
            index = index.cpu().numpy()
        array = np.asarray(index)
        if array.dtype == bool:
            raise TypeError("boolean masks are not supported as an index; pass integer indices")
        return [int(i) for i in array.reshape(-1)]

    def __getitem__(self, index: Index) -> torch.Tensor:
        if isinstance(index, (int, np.integer)) or (isinstance(index, torch.Tensor) and index.ndim == 0):
            return torch.from_numpy(self.image(int(index)))
        return self.stack(self.indices(index))

    def stack(self, indices: Sequence[int]) -> torch.Tensor:
        out = np.empty((len(indices), 3, self.image_size, self.image_size), np.float32)
        for j, i in enumerate(indices):
            out[j] = self.image(i)
        return torch.from_numpy(out)

    def __iter__(self) -> Iterator[torch.Tensor]:
        for i in range(self._n):
            yield self[i]

    def _check(self, i: int) -> int:
        if not -self._n <= i < self._n:
            raise IndexError(f"image index {i} out of range for {self._n} images")
        return i % self._n if self._n else i

    # -- batches
    def batches(self, index_batches: Iterable[Sequence[int]], num_workers: int | None = None) -> Iterator[torch.Tensor]:
        """``self[idx]`` for every ``idx`` of ``index_batches``, in order; decoded by
        ``num_workers`` (default ``self.num_workers``) DataLoader worker processes when > 0."""
        batches = [self.indices(b) for b in index_batches]
        workers = self.num_workers if num_workers is None else num_workers
        if workers == 0 or all(self._key(i) in self.cache for b in batches for i in b):
            for b in batches:
                yield self.stack(b)
            return
        loader = torch.utils.data.DataLoader(
            BatchDataset(self), batch_size=None, sampler=batches, num_workers=workers,
        )
        for b, tensor in zip(batches, loader):
            for j, i in enumerate(b):
                key = self._key(i)
                if key in self.cache:
                    self.cache.touch(key)
                else:
                    self.cache.put(key, compact(tensor[j].numpy()))
            yield tensor

    def materialize(self) -> torch.Tensor:
        """Every image as one ``(N, 3, S, S)`` tensor (``nbytes`` of memory); same as ``self[:]``."""
        return self.stack(list(range(self._n)))

    def dataset(self) -> "ImageDataset":
        return ImageDataset(self)


class FileImages(ImageSource):
    """Images decoded from ``Sample.image_path`` at ``image_size`` (``read_image``, as ``load_arrays``)."""

    def __init__(self, samples: Sequence[Sample], image_size: int, cache: ImageCache | None = None,
                 num_workers: int = 0):
        super().__init__(len(samples), image_size, cache, num_workers)
        self.samples = list(samples)

    def _key(self, i: int) -> Hashable:
        return ("file", self.samples[i].image_path, self.image_size)

    def _load(self, i: int) -> np.ndarray:
        return read_image(self.samples[i].image_path, self.image_size)

    @property
    def labels(self) -> np.ndarray:
        return np.array([s.label for s in self.samples], dtype=np.int64)

    def subset(self, indices: Sequence[int]) -> "FileImages":
        return FileImages([self.samples[i] for i in indices], self.image_size, self.cache, self.num_workers)


class SpilledImages(ImageSource):
    """The rows of a float32 ``(N, 3, S, S)`` ``.npy`` file, read with ``os.pread`` per image."""

    def __init__(self, path: str | Path, cache: ImageCache | None = None, num_workers: int = 0):
        self.path = str(path)
        with open(self.path, "rb") as fh:
            version = np.lib.format.read_magic(fh)
            fmt = np.lib.format
            read_header = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
            shape, fortran, dtype = read_header(fh)
            self._offset = fh.tell()
        if len(shape) != 4 or shape[1] != 3 or shape[2] != shape[3] or fortran or dtype != np.float32:
            raise ValueError(f"{self.path}: expected a C-ordered float32 (N, 3, S, S) array, got {shape} {dtype}")
        super().__init__(shape[0], shape[2], cache, num_workers)
        self._row = 3 * shape[2] * shape[3] * 4

    def _key(self, i: int) -> Hashable:
        return ("spill", self.path, i)

    def _load(self, i: int) -> np.ndarray:
        fd = os.open(self.path, os.O_RDONLY)
        try:
            raw = os.pread(fd, self._row, self._offset + i * self._row)
        finally:
            os.close(fd)
        s = self.image_size
        return np.frombuffer(raw, dtype=np.float32).reshape(3, s, s).copy()


def spill(images: Iterable[np.ndarray | torch.Tensor], n: int, image_size: int, path: str | Path) -> Path:
    """Write ``n`` float32 ``(3, S, S)`` images, one at a time, as a ``(n, 3, S, S)`` ``.npy`` file
    (plain writes: nothing is memory-mapped, so nothing stays resident in this process)."""
    path = Path(path)
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.float32)), "fortran_order": False,
              "shape": (n, 3, image_size, image_size)}
    count = 0
    with open(path, "wb") as fh:
        np.lib.format.write_array_header_1_0(fh, header)
        for image in images:
            array = image.numpy() if isinstance(image, torch.Tensor) else image
            array = np.ascontiguousarray(array, dtype=np.float32)
            if array.shape != (3, image_size, image_size):
                raise ValueError(f"spill: image of shape {array.shape}, expected (3, {image_size}, {image_size})")
            fh.write(array.tobytes())
            count += 1
    if count != n:
        raise ValueError(f"spill: wrote {count} images, expected {n}")
    return path


# ----------------------------------------------------------------------------------------------
# Dataset views


class ImageDataset(torch.utils.data.Dataset):
    """``dataset[i]`` = image ``i`` of ``source`` as a ``(3, S, S)`` tensor (for a plain DataLoader)."""

    def __init__(self, source: ImageSource):
        self.source = source

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.source[int(i)]


class BatchDataset(torch.utils.data.Dataset):
    """``dataset[[i, j, ...]]`` = the stacked batch: a DataLoader with ``batch_size=None`` and a
    sampler of index lists then fetches one whole batch per worker call."""

    def __init__(self, source: ImageSource):
        self.source = source

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, indices: Sequence[int]) -> torch.Tensor:
        return self.source.stack(list(indices))


# ----------------------------------------------------------------------------------------------
# helpers for code that takes a tensor or a source

ImagesLike = Union[torch.Tensor, ImageSource]


def iter_batches(images: ImagesLike, index_batches: Iterable[Sequence[int] | torch.Tensor]) -> Iterator[torch.Tensor]:
    """``images[idx]`` for every ``idx``: plain indexing for a tensor, ``batches`` for a source."""
    if isinstance(images, ImageSource):
        yield from images.batches(index_batches)
        return
    for idx in index_batches:
        yield images[idx]


def sequential_batches(n: int, batch_size: int) -> list[list[int]]:
    return [list(range(i, min(i + batch_size, n))) for i in range(0, n, batch_size)]


def read_masks(samples: Sequence[Sample], image_size: int) -> np.ndarray:
    """Masks of ``samples`` as uint8 ``(N, 1, S, S)`` in {0, 1} (``read_mask``'s values, a quarter
    of ``load_arrays``' float32: the metrics need every mask at once). A defective sample without
    a mask is a ``DatasetNotFoundError`` (as in ``load_arrays``)."""
    masks = np.zeros((len(samples), 1, image_size, image_size), np.uint8)
    for i, sample in enumerate(samples):
        if sample.mask_path is not None:
            masks[i] = read_mask(sample.mask_path, image_size)
        elif sample.label == 1:
            raise DatasetNotFoundError(f"mask missing for defective image {sample.image_path}")
    return masks
