"""Training batches from packed blocks: device-resident for small corpora, memory-mapped for large ones.

Batch (epoch, step, micro) of a rank holds the rows `order[start : start + batch_size]` of the
epoch's permutation (`torch.randperm` seeded by seed * 1000 + epoch), whichever way they are read.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from .errors import DataError

RESIDENT_MAX_BYTES = 1 << 30  # int64 copy of the training blocks kept on a GPU up to this size
RESIDENT_MAX_BYTES_CPU = 1 << 28  # on CPU the per-batch gather costs little next to a step


def resident_limit(device: torch.device) -> int:
    """Largest int64 copy of the training blocks kept in device memory: on a GPU 1 GiB and at most
    10% of its memory, on CPU 256 MiB and at most 10% of RAM. Larger corpora stay memory-mapped.
    (Reading and widening a 100 M-token file to int64 at start-up took 4 s and 0.9 GiB more RSS
    on CPU: python -m benchmarks.pretrain_startup.)"""
    if device.type == "cuda":
        return min(RESIDENT_MAX_BYTES, torch.cuda.get_device_properties(device).total_memory // 10)
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return min(RESIDENT_MAX_BYTES, RESIDENT_MAX_BYTES_CPU, ram // 10)


def gather_rows(blocks: np.ndarray, index: np.ndarray) -> np.ndarray:
    """Rows `index` of `blocks` (a memory map), in that order, as int64; read in file order."""
    ascending = np.argsort(index, kind="stable")
    rows = np.empty((len(index), blocks.shape[1]), dtype=np.int64)
    rows[ascending] = blocks[index[ascending]]
    return rows


def require_ids_in_vocab(rows, row_numbers, blocks, vocab_size: int | None) -> None:
    """A DataError naming the file, block and position of the first id of `rows` (host rows
    `row_numbers` of `blocks`) that the vocabulary does not have. One max() per batch: the
    embedding would otherwise fail deep inside with "index out of range in self"."""
    if vocab_size is None or len(rows) == 0 or int(rows.max()) < vocab_size:
        return
    row, position = (int(i[0]) for i in np.nonzero(np.asarray(rows) >= vocab_size))
    block = int(row_numbers[row])
    itemsize = blocks.dtype.itemsize if isinstance(blocks, np.ndarray) else blocks.element_size()
    offset = (block * rows.shape[1] + position) * itemsize
    raise DataError(
        f"{getattr(blocks, 'filename', None) or 'token blocks'}: token id {int(rows[row, position])} at block "
        f"{block}, position {position} (file offset {offset}) is beyond the vocabulary of {vocab_size} ids; the "
        "file is damaged or was written with another tokenizer: delete it and rerun the tokenize_corpus rule")


def head_rows(blocks, n: int | None, vocab_size: int | None = None) -> torch.Tensor:
    """The first `n` rows (all for None) as an int64 tensor: only those rows are read. With
    `vocab_size`, an id beyond it is a DataError naming the file and position."""
    part = blocks[:n]
    rows = part.long() if isinstance(part, torch.Tensor) else torch.from_numpy(np.asarray(part, dtype=np.int64))
    require_ids_in_vocab(rows.numpy() if rows.device.type == "cpu" else rows.cpu().numpy(), range(len(rows)),
                         blocks, vocab_size)
    return rows


class BlockLoader:
    """This rank's micro-batches in a seeded per-epoch order, from device-resident or memory-mapped blocks.

    Batch (epoch, step, micro) holds the rows `order[start : start + batch_size]` of the epoch's
    permutation (`torch.randperm` seeded by seed * 1000 + epoch), whichever way the rows are read:
    small corpora (see `resident_limit`) are copied to the device once and indexed there; larger
    ones stay a memory map, and each batch's rows are gathered, converted to int64, pinned and
    copied asynchronously, the next batch prepared by a background thread meanwhile. A batch is
    read only when asked for, so a resume mid-epoch starts reading at its position.
    """

    def __init__(self, blocks, *, device: torch.device, seed: int, batch_size: int, world: int, rank: int,
                 grad_accum: int, steps_per_epoch: int | None = None, resident: bool | None = None,
                 prefetch: bool | None = None, vocab_size: int | None = None):
        self.device, self.seed, self.batch_size = device, seed, batch_size
        self.vocab_size = vocab_size  # ids are checked against it: once when resident, per batch read
        self.world, self.rank, self.grad_accum = world, rank, grad_accum
        self.steps_per_epoch = steps_per_epoch or len(blocks) // (batch_size * world * grad_accum)
        self.n_blocks = len(blocks)
        if resident is None:
            resident = isinstance(blocks, torch.Tensor) or blocks.size * 8 <= resident_limit(device)
        self.blocks = head_rows(blocks, None, vocab_size).to(device) if resident else blocks
        self.resident = resident
        self.prefetch = (not resident and device.type == "cuda") if prefetch is None else prefetch
        self._orders: dict[int, torch.Tensor] = {}
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="blocks") if self.prefetch else None
        self._pending: tuple | None = None

    def order(self, epoch: int) -> torch.Tensor:
        """The epoch's permutation of block indices (the same on every rank and after a resume)."""
        with self._lock:
            if epoch not in self._orders:
                generator = torch.Generator().manual_seed(self.seed * 1000 + epoch)
                order = torch.randperm(self.n_blocks, generator=generator)
                self._orders = {e: o for e, o in self._orders.items() if e >= epoch - 1}
                self._orders[epoch] = order.to(self.device) if self.resident else order
            return self._orders[epoch]

    def index(self, epoch: int, step: int, micro: int) -> torch.Tensor:
        start = ((step * self.grad_accum + micro) * self.world + self.rank) * self.batch_size
        return self.order(epoch)[start : start + self.batch_size]

    def read(self, epoch: int, step: int, micro: int) -> torch.Tensor:
        """Batch rows from the memory map as an int64 host tensor (pinned when the device is a GPU)."""
        index = self.index(epoch, step, micro).numpy()
        rows = gather_rows(self.blocks, index)
        require_ids_in_vocab(rows, index, self.blocks, self.vocab_size)
        rows = torch.from_numpy(rows)
        return rows.pin_memory() if self.device.type == "cuda" else rows

    def batch(self, epoch: int, step: int, micro: int) -> torch.Tensor:
        """Micro-batch `micro` of optimizer step `step` of `epoch`, on the device, int64 [batch, seq_len]."""
        if self.resident:
            return self.blocks.index_select(0, self.index(epoch, step, micro))
        key = (epoch, step, micro)
        if self._pending is not None and self._pending[0] == key:
            host = self._pending[1].result()
        else:
            if self._pending is not None:
                self._pending[1].cancel()
            host = self.read(*key)
        self._pending = None
        if self._pool is not None:
            self._pending = (self.next_key(key), self._pool.submit(self.read, *self.next_key(key)))
        return host.to(self.device, non_blocking=True)

    def next_key(self, key: tuple[int, int, int]) -> tuple[int, int, int]:
        epoch, step, micro = key
        if micro + 1 < self.grad_accum:
            return epoch, step, micro + 1
        if step + 1 < self.steps_per_epoch:
            return epoch, step + 1, 0
        return epoch + 1, 0, 0

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool, self._pending = None, None
