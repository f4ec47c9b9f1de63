"""Data sets held whole in (device) memory, and an i.i.d. with-replacement batch sampler.

The paper (Appendix F) trains on CIFAR-10/100 with channel-wise normalisation only (no
augmentation), batch size 128, "sampling batches independently at each iteration, thus,
there is no notion of epochs". Everything here follows that: a :class:`DataSet` keeps the
normalised train and test tensors (float32 ``N×C×H×W`` images, int64 labels) on one
device, and :class:`BatchSampler` draws ``batch_size`` indices with replacement each step
from its own generator, whose state can be saved and restored so a resumed run sees the
same batches.

Sources:

- ``digits``: scikit-learn's 1797 8×8 grey digits (shipped with scikit-learn, no
  download), a fixed, seeded, stratified train/test split, normalised with the train set's
  mean and std. Small enough for CPU experiments.
- ``cifar10`` / ``cifar100``: read directly from torchvision's on-disk "python" format
  (no torchvision needed to read; pickles, loaded with an unpickler that admits NumPy
  arrays and plain containers only); ``download=True`` fetches it with torchvision (the
  optional ``sgdthermo[cifar]`` extra).
- ``synthetic``: learnable Gaussian classes, for tests.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import pickle
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import ConfigError, first_line
from .config import DATASETS

__all__ = [
    "DataSet",
    "DATASET_NAMES",
    "CIFAR_STATS",
    "load_digits",
    "depends_on_seed",
    "load_cifar",
    "synthetic",
    "load_dataset",
    "balanced_subset",
    "BatchSampler",
]

#: Names accepted by :func:`load_dataset`.
DATASET_NAMES = DATASETS  # sgdthermo.nn.config

#: Channel-wise (mean, std) of the paper's reference code
#: (github.com/isadrtdinov/neural-nets-ideal-gas, ``data.py``, ``transform_dataset``).
#: The CIFAR-10 values are the ones of Lobacheva et al.'s code
#: (github.com/tipt0p/periodic_behavior_bn_wd, ``nets/*_si.py``). For CIFAR-100 the
#: reference uses (0.5071, 0.4867, 0.4408) / (0.2675, 0.2565, 0.2761); the widespread
#: (0.5071, 0.4865, 0.4409) / (0.2673, 0.2564, 0.2762) differ in the 4th decimal only.
CIFAR_STATS: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)),
    "cifar100": ((0.5071, 0.4867, 0.4408), (0.2675, 0.2565, 0.2761)),
}

# torchvision's folder and file names for the python versions of CIFAR.
_CIFAR_LAYOUT: dict[str, dict[str, Any]] = {
    "cifar10": {
        "folder": "cifar-10-batches-py",
        "train": [f"data_batch_{i}" for i in range(1, 6)],
        "test": ["test_batch"],
        "meta": "batches.meta",
        "labels": "labels",
        "names": "label_names",
        "classes": 10,
        "title": "CIFAR-10",
    },
    "cifar100": {
        "folder": "cifar-100-python",
        "train": ["train"],
        "test": ["test"],
        "meta": "meta",
        "labels": "fine_labels",
        "names": "fine_label_names",
        "classes": 100,
        "title": "CIFAR-100",
    },
}

Device = str | torch.device


@dataclasses.dataclass
class DataSet:
    """A normalised image-classification data set held in memory on one device.

    ``train_x``/``test_x``: float32 ``N×C×H×W``; ``train_y``/``test_y``: int64 in
    ``[0, num_classes)``. ``mean``/``std``: the per-channel constants used to normalise
    (``(x/scale − mean)/std`` with scale 255 for CIFAR, 16 for digits).
    """

    name: str
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    num_classes: int
    in_channels: int
    image_size: int
    class_names: tuple[str, ...] | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None

    @property
    def n_train(self) -> int:
        """Number of training samples."""
        return int(self.train_y.shape[0])

    @property
    def n_test(self) -> int:
        """Number of test samples."""
        return int(self.test_y.shape[0])

    @property
    def device(self) -> torch.device:
        """Device of the tensors."""
        return self.train_x.device

    def to(self, device: Device) -> DataSet:
        """A copy with all tensors on ``device`` (no copy for tensors already there)."""
        return dataclasses.replace(
            self, train_x=self.train_x.to(device), train_y=self.train_y.to(device),
            test_x=self.test_x.to(device), test_y=self.test_y.to(device))

    def __repr__(self) -> str:
        return (f"DataSet({self.name!r}, train={self.n_train}, test={self.n_test}, "
                f"classes={self.num_classes}, shape={tuple(self.train_x.shape[1:])}, "
                f"device={self.device})")


# --------------------------------------------------------------------------- helpers


def balanced_subset(labels: np.ndarray | torch.Tensor, samples_per_label: int, *,
                    seed: int = 0, num_classes: int | None = None) -> np.ndarray:
    """Sorted indices of a class-balanced random subset: ``samples_per_label`` distinct
    samples of every class, drawn with ``numpy.random.default_rng(seed)``.

    Raises ``ValueError`` when a class has fewer samples than requested.
    """
    y = labels.cpu().numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
    if samples_per_label < 1:
        raise ValueError(f"samples_per_label must be >= 1, got {samples_per_label}")
    k = int(num_classes) if num_classes is not None else int(y.max()) + 1
    rng = np.random.default_rng(seed)
    chosen = []
    for c in range(k):
        idx = np.flatnonzero(y == c)
        if len(idx) < samples_per_label:
            raise ValueError(f"class {c} has only {len(idx)} training samples, "
                             f"samples_per_label={samples_per_label} requested")
        chosen.append(rng.choice(idx, samples_per_label, replace=False))
    return np.sort(np.concatenate(chosen))


def _normalise(x: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    m = np.asarray(mean, dtype=np.float32).reshape(1, -1, 1, 1)
    s = np.asarray(std, dtype=np.float32).reshape(1, -1, 1, 1)
    return ((x - m) / s).astype(np.float32)


def _tensors(x: np.ndarray, y: np.ndarray, device: Device) -> tuple[torch.Tensor, torch.Tensor]:
    return (torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(device),
            torch.from_numpy(np.asarray(y, dtype=np.int64)).to(device))


# --------------------------------------------------------------------------- digits


def load_digits(*, device: Device = "cpu", test_fraction: float = 0.25, seed: int = 0,
                samples_per_label: int | None = None) -> DataSet:
    """scikit-learn's handwritten digits: 1797 grey 8×8 images, 10 classes.

    Split: for every class, its samples are permuted with ``numpy.random.default_rng(seed)``
    (one generator, classes in order 0..9) and the first ``round(n_c · test_fraction)`` go
    to the test set — a fixed, stratified split (seed 0, fraction 0.25: 1347 train / 450
    test). Pixel values 0..16 are divided by 16, then normalised with the train set's mean
    and std (one channel). ``samples_per_label`` keeps a balanced subset of the train set
    (:func:`balanced_subset` with the same ``seed``) after the split; the normalisation
    constants stay those of the whole train split.
    """
    try:
        from sklearn.datasets import load_digits as _sk_digits
    except ImportError as exc:  # pragma: no cover - scikit-learn is a dependency
        raise ImportError("load_digits needs scikit-learn: pip install scikit-learn") from exc
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    raw = _sk_digits()
    images = raw.images.astype(np.float32)[:, None] / 16.0  # N×1×8×8
    labels = raw.target.astype(np.int64)
    rng = np.random.default_rng(seed)
    test_idx = []
    for c in range(10):
        idx = rng.permutation(np.flatnonzero(labels == c))
        test_idx.append(idx[: int(round(len(idx) * test_fraction))])
    test_mask = np.zeros(len(labels), dtype=bool)
    test_mask[np.concatenate(test_idx)] = True
    train_idx = np.flatnonzero(~test_mask)
    # statistics of the whole train split, so the preprocessing does not depend on the subset
    mean, std = (float(images[train_idx].mean()),), (float(images[train_idx].std()),)
    if samples_per_label is not None:
        train_idx = train_idx[balanced_subset(labels[train_idx], samples_per_label,
                                              seed=seed, num_classes=10)]
    xtr, ytr = images[train_idx], labels[train_idx]
    xte, yte = images[test_mask], labels[test_mask]
    train_x, train_y = _tensors(_normalise(xtr, mean, std), ytr, device)
    test_x, test_y = _tensors(_normalise(xte, mean, std), yte, device)
    return DataSet("digits", train_x, train_y, test_x, test_y, num_classes=10, in_channels=1,
                   image_size=8, class_names=tuple(str(i) for i in range(10)),
                   mean=mean, std=std)


# --------------------------------------------------------------------------- CIFAR


def _numpy_global(module: str, name: str) -> Any:
    """``numpy._core.<module>.<name>`` (NumPy 2), else ``numpy.core.<module>.<name>``."""
    for full in (f"numpy._core.{module}", f"numpy.core.{module}"):
        try:
            return getattr(importlib.import_module(full), name)
        except (ImportError, AttributeError):
            continue
    raise ImportError(f"numpy has no {module}.{name}")  # pragma: no cover


def _latin1_encode(text: Any, encoding: Any = "latin1") -> bytes:
    # How Python 3 pickles ``bytes`` under protocols 0-2: ``_codecs.encode(str, 'latin1')``.
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError("_codecs.encode is admitted for latin1 str only")
    return text.encode("latin1")


def _empty_bytes(*args: Any) -> bytes:
    # How Python 3 pickles ``b""`` under protocols 0-2: ``bytes()``.
    if args:
        raise pickle.UnpicklingError("bytes() is admitted without arguments only")
    return b""


def _cifar_globals() -> dict[tuple[str, str], Any]:
    reconstruct = _numpy_global("multiarray", "_reconstruct")
    scalar = _numpy_global("multiarray", "scalar")
    frombuffer = _numpy_global("numeric", "_frombuffer")
    admitted: dict[tuple[str, str], Any] = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): _latin1_encode,
        ("builtins", "bytes"): _empty_bytes,
        ("__builtin__", "bytes"): _empty_bytes,
    }
    for core in ("numpy.core", "numpy._core"):
        admitted[(f"{core}.multiarray", "_reconstruct")] = reconstruct
        admitted[(f"{core}.multiarray", "scalar")] = scalar
        admitted[(f"{core}.numeric", "_frombuffer")] = frombuffer
    return admitted


#: The only globals a CIFAR pickle may name: NumPy's array, dtype and scalar
#: reconstruction (NumPy 1 and 2 module names; ``_frombuffer`` is protocol 5's), and the
#: two helpers with which Python 3 writes ``bytes`` under protocols 0-2, restricted to that use.
_CIFAR_GLOBALS = _cifar_globals()


class _CifarUnpickler(pickle.Unpickler):
    """Unpickler that resolves only :data:`_CIFAR_GLOBALS`; any other global raises
    :class:`ConfigError` before anything is imported or called."""

    def __init__(self, file: Any, path: Path) -> None:
        super().__init__(file, encoding="latin1")
        self.path = path

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _CIFAR_GLOBALS[(module, name)]
        except KeyError:
            pass
        what = f"{module}.{name}"
        what = what if len(what) <= 80 else what[:77] + "..."
        raise ConfigError(f"{self.path}: refused to load {what!r} (a CIFAR batch holds only "
                          "NumPy arrays, lists and strings; this file is not a CIFAR batch)")


def _unpickle(path: Path) -> dict[str, Any]:
    """Load a CIFAR python batch (a pickled dict); keys as ``str`` whether pickled by
    Python 2 or 3.

    The unpickler is restricted to NumPy arrays and plain containers (:data:`_CIFAR_GLOBALS`),
    because a plain ``pickle.load`` runs whatever code a crafted file names. A refused
    global, a file that is not a readable pickle, or one that holds no dict raises a
    one-line :class:`ConfigError` naming the file.
    """
    with open(path, "rb") as f:
        try:
            d = _CifarUnpickler(f, path).load()
        except ConfigError:
            raise
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError,
                IndexError, KeyError, OverflowError, RecursionError) as exc:
            reason = first_line(exc)
            reason = reason if len(reason) <= 120 else reason[:117] + "..."
            raise ConfigError(f"{path}: not a CIFAR batch (not a readable pickle: "
                              f"{reason})") from None
    if not isinstance(d, dict):
        raise ConfigError(f"{path}: not a CIFAR batch (holds a {type(d).__name__}, "
                          "expected a dict)")
    return {(k.decode("latin1") if isinstance(k, bytes) else k): v for k, v in d.items()}


def _read_cifar_files(folder: Path, files: Sequence[str], label_key: str
                      ) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = [], []
    for name in files:
        d = _unpickle(folder / name)
        if "data" not in d or label_key not in d:
            raise ConfigError(f"{folder / name}: expected keys 'data' and '{label_key}', "
                              f"found {sorted(map(str, d))}")
        data = np.asarray(d["data"], dtype=np.uint8)
        if data.ndim != 2 or data.shape[1] != 3072:
            raise ValueError(f"{folder / name}: 'data' must be N×3072 uint8, got {data.shape}")
        xs.append(data.reshape(-1, 3, 32, 32))
        ys.append(np.asarray(d[label_key], dtype=np.int64))
        if len(ys[-1]) != len(xs[-1]):
            raise ValueError(f"{folder / name}: {len(xs[-1])} images but {len(ys[-1])} labels")
    return np.concatenate(xs), np.concatenate(ys)


def _download_cifar(root: Path, name: str) -> None:
    try:
        from torchvision import datasets  # type: ignore[import-not-found]
    except ImportError as exc:
        raise ImportError(
            f"download=True needs torchvision to fetch {_CIFAR_LAYOUT[name]['title']}: "
            "pip install 'sgdthermo[cifar]' (or torchvision), or place the extracted "
            f"'{_CIFAR_LAYOUT[name]['folder']}' folder under {root}") from exc
    cls = datasets.CIFAR10 if name == "cifar10" else datasets.CIFAR100
    root.mkdir(parents=True, exist_ok=True)
    cls(str(root), train=True, download=True)
    cls(str(root), train=False, download=True)


def load_cifar(root: str | os.PathLike[str], name: str = "cifar10", *, download: bool = False,
               samples_per_label: int | None = None, device: Device = "cpu",
               seed: int = 0) -> DataSet:
    """CIFAR-10 or CIFAR-100 from torchvision's on-disk python format under ``root``.

    CIFAR-10: ``root/cifar-10-batches-py/`` with ``data_batch_1`` … ``data_batch_5``,
    ``test_batch``, ``batches.meta``; CIFAR-100: ``root/cifar-100-python/`` with ``train``,
    ``test``, ``meta`` (fine labels, 100 classes). Each batch is a pickled dict with
    ``data`` (uint8 ``N×3072``: the red, green, blue 32×32 planes, row-major) and
    ``labels`` / ``fine_labels``. Images are scaled to [0, 1] and normalised channel-wise
    with :data:`CIFAR_STATS` (the paper's constants); no augmentation.

    ``samples_per_label``: keep a seeded class-balanced subset of the training set
    (:func:`balanced_subset`); the test set is always complete. ``download=True`` fetches
    the data with torchvision if the folder is missing. A missing folder otherwise raises
    ``FileNotFoundError`` naming the expected path.
    """
    key = name.lower()
    if key not in _CIFAR_LAYOUT:
        raise ValueError(f"unknown CIFAR variant '{name}': expected cifar10 or cifar100")
    lay = _CIFAR_LAYOUT[key]
    root = Path(root).expanduser()
    folder = root / lay["folder"]
    needed = [*lay["train"], *lay["test"]]
    missing = [f for f in needed if not (folder / f).is_file()]
    if missing and download:
        _download_cifar(root, key)
        missing = [f for f in needed if not (folder / f).is_file()]
    if missing:
        raise FileNotFoundError(
            f"{lay['title']} not found: expected {folder} holding {', '.join(needed)} "
            f"(torchvision's python format; missing {', '.join(missing)}); "
            "pass download=True or the right data_dir")
    xtr, ytr = _read_cifar_files(folder, lay["train"], lay["labels"])
    xte, yte = _read_cifar_files(folder, lay["test"], lay["labels"])
    k = int(lay["classes"])
    for part, y in (("train", ytr), ("test", yte)):
        if y.size and (y.min() < 0 or y.max() >= k):
            raise ValueError(f"{folder}: {part} labels outside [0, {k})")
    class_names = None
    if (folder / lay["meta"]).is_file():
        meta = _unpickle(folder / lay["meta"])
        names = meta.get(lay["names"])
        if names is not None:
            class_names = tuple(n.decode() if isinstance(n, bytes) else str(n) for n in names)
    if samples_per_label is not None:
        keep = balanced_subset(ytr, samples_per_label, seed=seed, num_classes=k)
        xtr, ytr = xtr[keep], ytr[keep]
    mean, std = CIFAR_STATS[key]
    train_x, train_y = _tensors(_normalise(xtr.astype(np.float32) / 255.0, mean, std), ytr, device)
    test_x, test_y = _tensors(_normalise(xte.astype(np.float32) / 255.0, mean, std), yte, device)
    return DataSet(key, train_x, train_y, test_x, test_y, num_classes=k, in_channels=3,
                   image_size=32, class_names=class_names, mean=mean, std=std)


# --------------------------------------------------------------------------- synthetic


def synthetic(*, n_train: int = 512, n_test: int = 256, num_classes: int = 4,
              in_channels: int = 1, image_size: int = 8, seed: int = 0,
              device: Device = "cpu", separation: float = 0.5) -> DataSet:
    """Learnable random images: class ``c`` is ``μ_c + noise`` with a fixed random mean
    image ``μ_c ~ N(0, separation²)`` per pixel and unit Gaussian noise, rescaled to unit
    variance. Labels are balanced (``i mod num_classes``, shuffled). Train and test share
    the class means. With the defaults (64 pixels, separation 0.5) the class means are
    ~4 noise standard deviations apart, so a linear classifier is near-perfect.
    """
    gen = torch.Generator().manual_seed(int(seed))
    shape = (in_channels, image_size, image_size)
    means = separation * torch.randn(num_classes, *shape, generator=gen)
    scale = (1.0 + separation ** 2) ** -0.5

    def draw(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        y = (torch.arange(n) % num_classes)[torch.randperm(n, generator=gen)]
        x = (means[y] + torch.randn(n, *shape, generator=gen)) * scale
        return x.float().to(device), y.long().to(device)

    train_x, train_y = draw(n_train)
    test_x, test_y = draw(n_test)
    return DataSet("synthetic", train_x, train_y, test_x, test_y, num_classes=num_classes,
                   in_channels=in_channels, image_size=image_size)


# --------------------------------------------------------------------------- dispatch


def depends_on_seed(name: str, samples_per_label: int | None = None) -> bool:
    """Whether :func:`load_dataset` returns other data for another ``seed``: the digits split
    and the synthetic set are seeded, and so is a ``samples_per_label`` subset; CIFAR's split
    is fixed."""
    return name.lower() in ("digits", "synthetic") or samples_per_label is not None


def load_dataset(name: str, *, data_dir: str | os.PathLike[str] | None = None,
                 device: Device = "cpu", samples_per_label: int | None = None,
                 download: bool = False, seed: int = 0) -> DataSet:
    """Load one of :data:`DATASET_NAMES`.

    ``data_dir`` (CIFAR only) defaults to ``$SGDTHERMO_DATA`` or ``./data``.
    ``samples_per_label`` keeps a seeded class-balanced training subset (all data sets).
    """
    key = name.lower()
    if key not in DATASET_NAMES:
        raise ValueError(f"unknown data set '{name}': expected one of {', '.join(DATASET_NAMES)}")
    if key == "digits":
        return load_digits(device=device, seed=seed, samples_per_label=samples_per_label)
    if key == "synthetic":
        ds = synthetic(seed=seed, device=device)
        if samples_per_label is not None:
            keep = torch.from_numpy(balanced_subset(ds.train_y, samples_per_label, seed=seed,
                                                    num_classes=ds.num_classes))
            keep = keep.to(ds.device)
            ds = dataclasses.replace(ds, train_x=ds.train_x[keep], train_y=ds.train_y[keep])
        return ds
    root = data_dir if data_dir is not None else os.environ.get("SGDTHERMO_DATA", "data")
    return load_cifar(root, key, download=download, samples_per_label=samples_per_label,
                      device=device, seed=seed)


# --------------------------------------------------------------------------- sampler


class BatchSampler:
    """i.i.d. minibatch indices, drawn with replacement every step (no epochs).

    Each :meth:`next` returns ``batch_size`` indices uniform on ``[0, n)`` from the
    sampler's own CPU ``torch.Generator`` (seeded with ``seed``; independent of torch's
    global RNG and of the device, so runs on CPU and GPU see the same batches), moved to
    ``device``. :meth:`state_dict` / :meth:`load_state_dict` save and restore the
    generator state (a uint8 tensor, loadable with ``torch.load(weights_only=True)``), so
    a resumed run continues with exactly the batches it would have drawn.
    """

    def __init__(self, n: int, batch_size: int = 128, *, seed: int = 0,
                 device: Device = "cpu") -> None:
        if n < 1 or batch_size < 1:
            raise ValueError(f"need n >= 1 and batch_size >= 1, got n={n}, batch_size={batch_size}")
        self.n = int(n)
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.device = torch.device(device)
        self.generator = torch.Generator(device="cpu").manual_seed(self.seed)
        self.steps = 0

    def next(self) -> torch.Tensor:
        """The next batch: ``LongTensor[batch_size]`` of indices on ``device``."""
        idx = torch.randint(0, self.n, (self.batch_size,), generator=self.generator)
        self.steps += 1
        return idx.to(self.device)

    def __next__(self) -> torch.Tensor:
        return self.next()

    def __iter__(self) -> BatchSampler:
        return self

    def state_dict(self) -> dict[str, Any]:
        """Generator state (uint8 tensor) plus ``n``, ``batch_size``, ``seed``, ``steps``."""
        return {"generator": self.generator.get_state(), "n": self.n,
                "batch_size": self.batch_size, "seed": self.seed, "steps": self.steps}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict`; ``n`` and ``batch_size`` must match."""
        if int(state["n"]) != self.n or int(state["batch_size"]) != self.batch_size:
            raise ValueError(f"sampler state is for n={state['n']}, batch_size="
                             f"{state['batch_size']}; this sampler has n={self.n}, "
                             f"batch_size={self.batch_size}")
        gen_state = state["generator"]
        if not isinstance(gen_state, torch.Tensor) or gen_state.dtype != torch.uint8:
            raise ValueError("sampler state 'generator' must be a uint8 tensor")
        self.generator.set_state(gen_state.cpu())
        self.seed = int(state.get("seed", self.seed))
        self.steps = int(state.get("steps", 0))
