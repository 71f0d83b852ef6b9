"""Resumable shuffling for train loaders: a run killed after a checkpoint and resumed sees the
same batches (same shuffle order, same random point subsets) as an uninterrupted run.

* :func:`rng_states` / :func:`set_rng_states`: the Python, NumPy and torch (CPU, CUDA) RNG states
  as plain containers and tensors (loadable with ``torch.load(..., weights_only=True)``).
* :class:`ResumableBatchSampler`: the order of ``DataLoader(shuffle=True)`` (a ``RandomSampler``
  in a ``BatchSampler``), bit for bit: each epoch draws its seed from torch's global RNG with the
  same single int64 draw as ``RandomSampler``, then permutes with a private generator. It can
  restart an epoch at a given batch with the saved epoch seed.
* :class:`ResumableDataLoader`: a shuffling ``DataLoader`` with ``state_dict``/``load_state_dict``
  (Lightning's stateful-loader protocol: the fit loop saves the state in every checkpoint and
  loads it when it restarts mid-epoch).

Random draws made while loading a batch:

* ``num_workers == 0``: the data set draws from the global RNG in the main process, interleaved
  with the model's draws (unchanged from a plain ``DataLoader``). The sampler notes the RNG
  states just before each batch is fetched; a mid-epoch resume refetches the pending batch from
  the state noted before it, then continues from the state at the checkpoint.
* ``num_workers > 0``: each batch is loaded with the worker's torch, NumPy and Python RNGs seeded
  from ``(epoch seed, batch index)`` (:func:`batch_seed`), so what a batch draws depends neither on
  the worker that loads it nor on when the worker was started. The loader's base seed comes from
  a private generator, so creating an iterator does not draw from the global RNG.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

__all__ = ["ResumableBatchSampler", "ResumableDataLoader", "SeededBatch", "batch_seed", "rng_states",
           "set_rng_states"]


def rng_states() -> dict[str, Any]:
    """The Python, NumPy and torch CPU (and CUDA, when initialised) RNG states, as plain types and
    tensors."""
    np_state = np.random.get_state()
    py_state = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {"name": np_state[0], "keys": torch.from_numpy(np_state[1].astype(np.int64)),
                  "pos": int(np_state[2]), "has_gauss": int(np_state[3]), "cached": float(np_state[4])},
        "python": {"version": py_state[0], "state": list(py_state[1]),
                   "gauss": py_state[2] if py_state[2] is None else float(py_state[2])},
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_states(state: dict[str, Any]) -> None:
    """Restore states returned by :func:`rng_states` (a missing ``"cuda"`` entry is left alone)."""
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    p = state["python"]
    random.setstate((p["version"], tuple(p["state"]), p["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def batch_seed(epoch_seed: int, batch: int) -> int:
    """The seed of batch ``batch`` of the epoch whose shuffle seed is ``epoch_seed`` (63 bits)."""
    return int(np.random.SeedSequence([epoch_seed & (2**64 - 1), batch]).generate_state(1, np.uint64)[0] >> 1)


class SeededBatch(list):
    """The item indices of one batch (a ``list``) with the seed its loading draws from."""

    def __init__(self, indices, seed: int) -> None:
        super().__init__(indices)
        self.seed = seed

    def __reduce__(self):  # pickled to the workers with its seed
        return (SeededBatch, (list(self), self.seed))


class _SeededFetch(Dataset):
    """Loads a :class:`SeededBatch` with the torch, NumPy and Python RNGs seeded from its seed
    (used in DataLoader workers)."""

    def __init__(self, dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index):
        return self.dataset[index]

    def __getitems__(self, indices) -> list:
        seed = getattr(indices, "seed", None)
        if seed is not None:
            torch.manual_seed(seed)
            np.random.seed(seed % 2**32)
            random.seed(seed)
        return [self.dataset[i] for i in indices]


class ResumableBatchSampler(Sampler[list[int]]):
    """Shuffled batches of ``range(n)``, identical to ``BatchSampler(RandomSampler(range(n)),
    batch_size, drop_last)``, that can restart an epoch at a given batch.

    Every ``__iter__`` draws the epoch seed from torch's global RNG (one int64, as
    ``RandomSampler`` does) unless :meth:`resume` queued a restart. Yields :class:`SeededBatch`
    lists. ``record_rng=True`` notes the global RNG states just before each batch is handed out
    (kept for the last ``keep`` batches in :attr:`rng_before`).
    """

    def __init__(self, n: int, batch_size: int, drop_last: bool, record_rng: bool = False, keep: int = 8) -> None:
        if n < 0 or batch_size < 1:
            raise ValueError(f"need n >= 0 and batch_size >= 1, got n={n}, batch_size={batch_size}")
        self.n, self.batch_size, self.drop_last = int(n), int(batch_size), bool(drop_last)
        self.record_rng, self.keep = bool(record_rng), int(keep)
        #: the seed of the current (or last) epoch's permutation; None before the first epoch
        self.epoch_seed: int | None = None
        #: batch index -> RNG states just before that batch was handed out (record_rng only)
        self.rng_before: dict[int, dict[str, Any]] = {}
        #: batches of the current epoch handed out so far (counting those a resume skipped)
        self.handed_out = 0
        self._resume: dict[str, Any] | None = None

    def __len__(self) -> int:
        return self.n // self.batch_size if self.drop_last else -(-self.n // self.batch_size)

    def resume(self, epoch_seed: int, start: int, rng_first: dict | None = None, rng_after: dict | None = None) -> None:
        """Make the next ``__iter__`` replay the epoch of ``epoch_seed`` from batch ``start``: the
        global RNGs are set to ``rng_first`` before the first batch is handed out, and to
        ``rng_after`` before the second one is asked for (either may be None: left alone)."""
        self._resume = {"epoch_seed": int(epoch_seed), "start": int(start), "rng_first": rng_first,
                        "rng_after": rng_after}

    def __iter__(self) -> Iterator[SeededBatch]:
        plan, self._resume = self._resume, None
        if plan is None:
            seed = int(torch.empty((), dtype=torch.int64).random_().item())
            start = 0
        else:
            seed, start = plan["epoch_seed"], plan["start"]
        self.epoch_seed = seed
        self.rng_before = {}
        self.handed_out = start
        gen = torch.Generator()
        gen.manual_seed(seed)
        order = torch.randperm(self.n, generator=gen).tolist()
        first = True
        for k in range(start, len(self)):
            if first and plan is not None and plan["rng_first"] is not None:
                set_rng_states(plan["rng_first"])
            if self.record_rng:
                self.rng_before[k] = rng_states()
                self.rng_before.pop(k - self.keep, None)
            self.handed_out = k + 1
            yield SeededBatch(order[k * self.batch_size:(k + 1) * self.batch_size], batch_seed(seed, k))
            if first and plan is not None and plan["rng_after"] is not None:
                set_rng_states(plan["rng_after"])
            first = False
        if first and plan is not None and plan["rng_after"] is not None:
            set_rng_states(plan["rng_after"])


class ResumableDataLoader(DataLoader):
    """A shuffling train ``DataLoader`` whose position survives a checkpoint (see the module doc).

    Same batches as ``DataLoader(dataset, batch_size, shuffle=True, drop_last=...)`` when
    ``num_workers == 0``. ``consumed`` is a callable giving the number of batches of the current
    epoch that training has used (the Lightning trainer prefetches, so the loader alone cannot
    tell); ``None``: every batch handed out counts as used.

    ``state_dict()``: ``{"epoch_seed", "consumed", "n_batches", "rng_at_save", "rng_before"?}``;
    ``load_state_dict()`` queues the restart for the next iterator (mid-epoch states only).
    """

    def __init__(self, dataset, batch_size: int, drop_last: bool, num_workers: int = 0,
                 consumed: Callable[[], int | None] | None = None, **kwargs: Any) -> None:
        sampler = ResumableBatchSampler(len(dataset), batch_size, drop_last, record_rng=num_workers == 0)
        if num_workers > 0:
            dataset = _SeededFetch(dataset)
            kwargs.setdefault("generator", torch.Generator().manual_seed(0))
        super().__init__(dataset, batch_sampler=sampler, num_workers=num_workers, **kwargs)
        self.resumable_sampler = sampler
        self._consumed = consumed

    def state_dict(self) -> dict[str, Any]:
        s = self.resumable_sampler
        consumed = self._consumed() if self._consumed is not None else None
        consumed = s.handed_out if consumed is None else int(consumed)
        state: dict[str, Any] = {"epoch_seed": s.epoch_seed, "consumed": consumed, "n_batches": len(s),
                                 "rng_at_save": rng_states()}
        if state["consumed"] in s.rng_before:
            state["rng_before"] = s.rng_before[state["consumed"]]
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        seed, consumed = state.get("epoch_seed"), int(state.get("consumed", 0))
        if seed is None or consumed >= int(state.get("n_batches", len(self.resumable_sampler))):
            return  # no epoch under way: the next one starts afresh
        before = state.get("rng_before")
        if before is not None:  # the pending batch was already fetched: refetch it from the state before it
            self.resumable_sampler.resume(seed, consumed, rng_first=before, rng_after=state["rng_at_save"])
        else:
            self.resumable_sampler.resume(seed, consumed, rng_first=state["rng_at_save"])
