"""Callbacks that attach a :class:`~sgdthermo.Thermometer` to a training framework's loop.

- :class:`~sgdthermo.integrations.lightning.ThermometerCallback`: a Lightning ``Callback``
  (``lightning.pytorch`` or ``pytorch_lightning``; extra ``sgdthermo[lightning]``);
- :class:`~sgdthermo.integrations.huggingface.ThermometerTrainerCallback`: a ``transformers``
  ``TrainerCallback`` for the Hugging Face ``Trainer`` (extra ``sgdthermo[huggingface]``).

Both step the thermometer after every optimizer step, take a log point every ``log_every``
steps (optionally with ``noise_batches`` extra batches for the gradient-noise estimate) and
close it when training ends. The frameworks are imported only when a callback is first
used, so ``import sgdthermo.integrations`` needs neither.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

#: Public name → submodule that defines it.
_EXPORTS = {
    "ThermometerCallback": "lightning",
    "ThermometerTrainerCallback": "huggingface",
}

__all__ = ["ThermometerCallback", "ThermometerTrainerCallback"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


# ---------------------------------------------------------------------------------------------
# Shared by the callbacks (private; torch is imported inside the functions).


def _noise_loader(data: Any, seed: int) -> Any:
    """An iterable of noise batches drawn like ``data`` but independent of the training stream.

    A map-style ``DataLoader`` is re-created over the same dataset, batch size and collate
    function with its own shuffling generator (seeded ``seed``), in the main process and with
    ``drop_last`` so every batch has the training batch size; the training loader's sampler
    and the global random state are left untouched. Any other iterable is used as it is (an
    accelerate-prepared loader through the loader it wraps, so that the training loader's
    bookkeeping never sees a second iteration).
    """
    from torch.utils.data import DataLoader, IterableDataset

    loader = getattr(data, "base_dataloader", data)  # accelerate's adapters keep the original here
    if not isinstance(loader, DataLoader) or isinstance(loader.dataset, IterableDataset):
        return loader
    batch_size = loader.batch_size or getattr(loader.batch_sampler, "batch_size", None)
    if not batch_size:
        return loader
    try:
        n = len(loader.dataset)  # type: ignore[arg-type]
    except TypeError:
        return loader
    import torch

    return DataLoader(loader.dataset, batch_size=batch_size, shuffle=True,
                      drop_last=n >= batch_size, collate_fn=loader.collate_fn, num_workers=0,
                      generator=torch.Generator().manual_seed(int(seed)))


class _NoiseBatches:
    """A callable returning one batch per call from an iterable, restarted when exhausted."""

    def __init__(self, data: Iterable[Any], prepare: Callable[[Any], Any] | None = None) -> None:
        self._data = data
        self._prepare = prepare
        self._it: Any = None

    def __call__(self) -> Any:
        if self._it is None:
            self._it = iter(self._data)
        try:
            batch = next(self._it)
        except StopIteration:
            self._it = iter(self._data)
            try:
                batch = next(self._it)
            except StopIteration:
                raise ValueError("the noise-batch source yields no batch") from None
        return self._prepare(batch) if self._prepare is not None else batch


def _rows(result: Any) -> list[dict[str, Any]]:
    """A log point's rows as a list of dicts (from a DataFrame, a list of dicts or rows keyed
    by group)."""
    if result is None:
        return []
    if hasattr(result, "to_dict") and hasattr(result, "columns"):
        return list(result.to_dict("records"))
    if isinstance(result, Mapping):
        if "group" in result:
            return [dict(result)]
        return [dict(v, group=v.get("group", k)) for k, v in result.items() if isinstance(v, Mapping)]
    return [dict(r) for r in result]


def _scalars(result: Any, group: str = "all") -> dict[str, float]:
    """The finite numeric columns of ``group``'s row of a log point (``step``, ``d`` and
    ``steps`` left out; booleans as 0/1). Empty if the log point has no such row."""
    for row in _rows(result):
        if str(row.get("group")) != group:
            continue
        out: dict[str, float] = {}
        for key, value in row.items():
            if key in ("step", "group", "d", "steps"):
                continue
            if hasattr(value, "item") and getattr(value, "ndim", 0) == 0:
                value = value.item()
            if isinstance(value, (bool, int, float)) and math.isfinite(value):
                out[str(key)] = float(value)
        return out
    return {}
