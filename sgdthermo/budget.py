r"""Will it fit? Memory and work estimates checked before a run starts.

Every command validates its settings before it computes anything; this module is where the
validation asks whether the run can fit in memory and finish at all, so that a huge value
(``--dim 1000000000``, ``--queue-size 1000000000``, ``--width 1000000``, ``--iters 1e20``) is
refused at once with one line holding the estimate and what to change, instead of a multi-terabyte
allocation attempt, a traceback or a silent hang.

- :func:`available_memory`, :func:`format_bytes` and :func:`check_memory`: the memory of a
  device, sizes as text (binary units: B, KiB, MiB, GiB, TiB, PiB, EiB, everywhere), and the
  check of an estimate (a dict of named parts, in bytes) against it;
- :func:`check_steps`: the hard bound :data:`MAX_STEPS` on the steps of one run;
- networks: :func:`estimate_train_memory` for a :class:`sgdthermo.nn.config.TrainConfig` and
  :func:`check_train_budget` (called by ``TrainConfig.validate``);
- the isotropic-noise model: :func:`estimate_isotropic_memory`, the grid-size bound
  :func:`check_isotropic_work` and :func:`check_isotropic_budget` (called by
  :func:`sgdthermo.isotropic.validate_settings`).

The estimates are deliberately simple and are meant to be right within a factor of about 2
(the queues and state arrays exactly); the budgets are far above every setting the package
uses: the paper's (isotropic 17 × 17 grid, d = 3, 2·10⁶ steps; ResNet-18 k = 4 or ConvNet
k = 8 on CIFAR with batch 128 and a queue of 4000 snapshots) need at most a few GiB.

Importing this module imports neither torch nor numpy; the functions that need torch import
it when called.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ConfigError

__all__ = [
    "MAX_STEPS",
    "MAX_ISOTROPIC_WORK",
    "available_memory",
    "format_bytes",
    "check_memory",
    "check_steps",
    "DataShape",
    "dataset_shape",
    "ModelSize",
    "model_size",
    "estimate_train_memory",
    "check_train_budget",
    "estimate_isotropic_memory",
    "check_isotropic_work",
    "check_isotropic_budget",
]

#: The most steps (iterations) one run may take. No network run finishes that many: a training
#: step of the smallest network here takes at least ~0.2 ms (an MLP of width 1, batch 128,
#: forward and backward on a CPU core; the ConvNet of width 4 on digits ~5 ms), so 10¹² steps
#: would take six years. The isotropic model does ~10⁷ steps/s on one grid point (d = 3, one
#: core): a day per point before the grid multiplies it, where the paper uses 2·10⁶ steps. It
#: also keeps every step count far inside the 64-bit integers of the kernels.
MAX_STEPS: int = 10**12

#: The most coordinate updates (grid points × steps × d) of one isotropic run: the grid-size
#: bound. The fused kernel does about 10⁸ of them per second on 2 CPU cores (the paper's whole
#: grid, 289 × 2·10⁶ × 3 ≈ 1.7·10⁹, takes seconds), so 10¹⁶ is three years there and months on
#: a large many-core machine.
MAX_ISOTROPIC_WORK: int = 10**16

#: Memory assumed when the operating system does not say (no ``sysconf``): generous, so that
#: only what no ordinary machine holds is refused.
FALLBACK_MEMORY: int = 2**40

_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB")
_DTYPE_BYTES = {"float16": 2, "bfloat16": 2, "float32": 4, "float64": 8}
_FLOAT32, _FLOAT64, _INT64 = 4, 8, 8


# ---------------------------------------------------------------------------------------
# Memory of a device, sizes as text, the check
# ---------------------------------------------------------------------------------------
def _cgroup_limit() -> int | None:
    """The memory limit of this process's cgroup (v2 ``memory.max``, v1
    ``memory.limit_in_bytes``), or None when there is none."""
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(path).read_text().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) < 2**60:  # "max" or a huge number: no limit
            return int(text)
    return None


def _physical_memory() -> int | None:
    try:
        n = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None
    return int(n) if n > 0 else None


def available_memory(device: str = "cpu") -> int:
    """Bytes of memory a run on ``device`` may use.

    ``"cpu"``: the physical memory (``SC_PHYS_PAGES × SC_PAGE_SIZE``), or the cgroup's limit when
    it is lower; :data:`FALLBACK_MEMORY` when the system says neither. ``"cuda"``/``"cuda:N"``:
    the GPU's total memory (``torch.cuda.get_device_properties``; torch is imported only then);
    ``"auto"``: a GPU when torch sees one, else the CPU. A GPU that cannot be queried counts as
    the CPU. The total, not what is free now, so that the answer does not depend on what else
    runs.
    """
    dev = str(device)
    if dev == "auto" or dev.startswith("cuda"):
        try:
            import torch

            if torch.cuda.is_available():
                if dev in ("auto", "cuda"):
                    index = torch.cuda.current_device()
                else:
                    index = int(dev.split(":", 1)[1])
                return int(torch.cuda.get_device_properties(index).total_memory)
        except Exception:  # no torch, no driver, a bad index: fall back to the host
            pass
    sizes = [n for n in (_physical_memory(), _cgroup_limit()) if n is not None]
    return min(sizes) if sizes else FALLBACK_MEMORY


def _device_name(device: str) -> str:
    dev = str(device)
    if dev == "auto":
        try:
            import torch

            return "GPU" if torch.cuda.is_available() else "CPU"
        except Exception:
            return "CPU"
    return "GPU" if dev.startswith("cuda") else "CPU"


def format_bytes(n: int | float) -> str:
    """A size in binary units, three significant figures: ``512 B``, ``1.50 KiB``,
    ``22.7 TiB`` (units up to EiB; larger sizes as many EiB)."""
    v = float(n)
    unit = 0
    while abs(v) >= 1024 and unit < len(_UNITS) - 1:
        v /= 1024
        unit += 1
    if unit == 0:
        return f"{int(round(v))} B"
    text = f"{v:.0f}" if abs(v) >= 100 else f"{v:.1f}" if abs(v) >= 10 else f"{v:.2f}"
    return f"{text} {_UNITS[unit]}"


def check_memory(
    parts: Mapping[str, int],
    *,
    device: str = "cpu",
    advice: str | Mapping[str, str] = "",
    details: Mapping[str, str] | None = None,
    subject: str | Mapping[str, str] | None = None,
    available: int | None = None,
) -> None:
    """Raise a one-line :class:`ConfigError` when the parts of an estimate do not fit.

    ``parts``: bytes by name (``{"entropy queue": 24e12, ...}``). The total is compared with
    ``available`` (default :func:`available_memory` of ``device``). The message names the largest
    part with its size, the total and the available amount::

        --queue-size 1000000000: needs 22.7 TiB of CPU memory, 22.7 TiB of it for the entropy
        queue (1000000000 snapshots x 6084 float32), more than the 23.4 GiB there is; lower
        --queue-size or use --queue-dtype float16

    ``subject`` (leads the message: the flag and its value), ``details`` (in brackets after the
    part's name) and ``advice`` (after the semicolon) are strings, or mappings from part names
    to strings: the entry of the largest part is used.
    """
    sizes = {name: max(0, int(b)) for name, b in parts.items()}
    total = sum(sizes.values())
    avail = available_memory(device) if available is None else int(available)
    if total <= avail:
        return
    name = max(sizes, key=sizes.__getitem__)

    def pick(v: str | Mapping[str, str] | None) -> str:
        if v is None:
            return ""
        return v if isinstance(v, str) else v.get(name, "")

    lead, detail, todo = pick(subject), (details or {}).get(name, ""), pick(advice)
    msg = (f"needs {format_bytes(total)} of {_device_name(device)} memory, {format_bytes(sizes[name])} "
           f"of it for the {name}{f' ({detail})' if detail else ''}, more than the "
           f"{format_bytes(avail)} there is")
    raise ConfigError((f"{lead}: " if lead else "") + msg + (f"; {todo}" if todo else ""))


def check_steps(steps: int, flag: str = "--iters", why: str = "years even for the smallest network") -> None:
    """Refuse more than :data:`MAX_STEPS` steps: one line naming the value, how long
    :data:`MAX_STEPS` alone takes (``why``) and the most allowed."""
    if steps > MAX_STEPS:
        raise ConfigError(f"{flag} {steps}: more than {MAX_STEPS:.0e} steps, too many to finish "
                          f"({MAX_STEPS:.0e} alone takes {why}); use at most {MAX_STEPS}")


def _ratio(value: float, reference: float) -> float:
    return float(value) / float(reference) if reference else float(value)


def _by_ratio(drivers: list[tuple[str, float]]) -> list[str]:
    """The flags of ``drivers`` ((flag text, value / its usual value)), most unusual first."""
    return [text for text, _ in sorted(drivers, key=lambda d: -d[1])]


# ---------------------------------------------------------------------------------------
# Networks
# ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DataShape:
    """What a data set puts on the device: sample shape, classes and sample counts."""

    in_channels: int
    image_size: int
    num_classes: int
    n_train: int
    n_test: int

    @property
    def sample_bytes(self) -> int:
        """One float32 image and its int64 label."""
        return self.in_channels * self.image_size**2 * _FLOAT32 + _INT64


#: The data sets of :func:`sgdthermo.nn.data.load_dataset` (digits: the 1347/450 split of
#: scikit-learn's 1797 images; synthetic: the defaults of :func:`sgdthermo.nn.data.synthetic`).
_DATASETS: dict[str, DataShape] = {
    "digits": DataShape(1, 8, 10, 1347, 450),
    "cifar10": DataShape(3, 32, 10, 50_000, 10_000),
    "cifar100": DataShape(3, 32, 100, 50_000, 10_000),
    "synthetic": DataShape(1, 8, 4, 512, 256),
}


def dataset_shape(name: str, samples_per_label: int | None = None) -> DataShape:
    """The :class:`DataShape` of a data set, with the training set cut to
    ``samples_per_label × classes`` when given."""
    s = _DATASETS[name]
    if samples_per_label is None:
        return s
    n = min(s.n_train, int(samples_per_label) * s.num_classes)
    return DataShape(s.in_channels, s.image_size, s.num_classes, n, s.n_test)


@dataclass(frozen=True)
class ModelSize:
    """Sizes of a model: all parameters (the frozen head included), the trainable ones (for the
    models here, the scale-invariant group: d), and the activations of one sample: the sum of
    the sizes of every layer's output (the input included), in elements."""

    parameters: int
    trainable: int
    activations_per_sample: int


def _convnet_size(c: int, k: int, n: int, s: int) -> ModelSize:
    """:class:`sgdthermo.nn.models.ConvNet`: four 3×3 convolutions k, 2k, 4k, 8k, each with a
    BatchNorm and a ReLU, max-pools after the last three, global pool, frozen head."""
    chans = [k, 2 * k, 4 * k, 8 * k]
    trainable = 9 * (c * k + sum(a * b for a, b in zip(chans, chans[1:])))
    acts, size = c * s * s, s
    for i, ch in enumerate(chans):
        acts += 3 * ch * size * size  # convolution, BatchNorm, ReLU
        if i > 0:
            size //= 2
            acts += ch * size * size  # max-pool
    acts += 8 * k + n  # global pool, head
    return ModelSize(trainable + 8 * k * n, trainable, acts)


def _resnet18_size(c: int, k: int, n: int, s: int) -> ModelSize:
    """:class:`sgdthermo.nn.models.PreActResNet18`: a 3×3 stem, four stages of two
    pre-activation blocks (widths k, 2k, 4k, 8k, strides 1, 2, 2, 2; a BatchNorm and a 1×1
    convolution in the shortcut where the shape changes), final BatchNorm, ReLU, pool, head."""
    trainable, acts, size, planes_in = 9 * c * k, c * s * s + k * s * s, s, k
    for i, planes in enumerate([k, 2 * k, 4 * k, 8 * k]):
        for block in range(2):
            stride = 2 if (i > 0 and block == 0) else 1
            out = (size - 1) // stride + 1
            trainable += 9 * planes_in * planes + 9 * planes * planes
            acts += 2 * planes_in * size * size  # bn1, relu
            acts += 5 * planes * out * out  # conv1, bn2, relu, conv2, the sum
            if stride != 1 or planes_in != planes:
                trainable += planes_in * planes
                acts += planes_in * size * size + planes * out * out  # shortcut BatchNorm, 1×1 conv
            planes_in, size = planes, out
    acts += 2 * 8 * k * size * size + 8 * k + n  # final BatchNorm, ReLU, pool, head
    return ModelSize(trainable + 8 * k * n, trainable, acts)


def _mlp_size(c: int, k: int, n: int, s: int) -> ModelSize:
    """:class:`sgdthermo.nn.models.MLP`: two hidden layers of k (Linear, BatchNorm, ReLU), head."""
    features = c * s * s
    trainable = features * k + k * k
    return ModelSize(trainable + k * n, trainable, features + 6 * k + n)


_MODEL_SIZES = {"convnet": _convnet_size, "resnet18": _resnet18_size, "mlp": _mlp_size}


def model_size(model: str, width: int, dataset: str) -> ModelSize:
    """The sizes of ``model`` at ``width`` on ``dataset`` (its input shape and classes).

    Counted from the layouts of :mod:`sgdthermo.nn.models`, in microseconds, for any width
    (``--width 1000000`` is a 10¹⁴-parameter ConvNet, counted without building anything);
    the parameter counts are exact (tested against the built models, every model of
    :data:`sgdthermo.nn.config.MODELS`). A model without a layout here raises ``LookupError``
    (the memory check then leaves it to the run).
    """
    shape = dataset_shape(dataset)
    args = (shape.in_channels, int(width), shape.num_classes, shape.image_size)
    if model not in _MODEL_SIZES:
        raise LookupError(f"no layout for model {model!r}")
    return _MODEL_SIZES[model](*args)


#: Peak memory of a training step's forward and backward pass, in units of the batch's layer
#: outputs (:attr:`ModelSize.activations_per_sample` × 4 bytes × batch): measured 0.67–1.40 on
#: the three models (CPU peak resident memory, batches of 512 to 10⁵).
TRAIN_ACTIVATION_FACTOR: float = 1.25
#: The same for an evaluation (no-grad) forward pass: measured 0.25–0.54.
EVAL_ACTIVATION_FACTOR: float = 0.5
#: Batch of the evaluation passes over the training and test sets (``MeasureConfig``).
EVAL_BATCH: int = 1024
#: Memory of one log row (a dict of ~40 floats, kept for the run, and its copy in the
#: DataFrame written at every log point).
LOG_ROW_BYTES: int = 4096
#: The neighbour search of the entropy estimate (``sgdthermo.entropy.neighbors``): feature
#: dimensions up to this use a k-d tree, above it a chunked torch search with an N × N Gram
#: matrix of at most ``GRAM_LIMIT`` bytes and column buffers of at most ``CHUNK_LIMIT`` bytes.
KDTREE_MAX_DIM: int = 20
GRAM_LIMIT: int = 2**30
CHUNK_LIMIT: int = 256 * 2**20


def _neighbour_search_bytes(n: int, d: int) -> int:
    """Working memory of one nearest-neighbour entropy estimate of n points in R^d."""
    if d <= KDTREE_MAX_DIM:
        return 4 * n * (d + 2) * _FLOAT64  # features, the tree, the queries and their answers
    return min(n * n * _FLOAT64, GRAM_LIMIT) + min(3 * n * d * _FLOAT64, CHUNK_LIMIT) + 16 * n * _FLOAT64


def _log_points(iters: int, every: int, linear_until: int, per_decade: int) -> int:
    """An upper bound on the number of steps :func:`sgdthermo.nn.measure.log_schedule` returns
    (counted, not built)."""
    n = min(iters, linear_until) // max(1, every) + 1
    if iters > linear_until > 0:
        n += max(2, int(math.ceil(max(per_decade, 0) * math.log10(iters / linear_until))) + 1)
    return n


def estimate_train_memory(cfg: Any, size: ModelSize | None = None) -> dict[str, int]:
    """Peak memory of a training run (a :class:`sgdthermo.nn.config.TrainConfig`), in bytes by part.

    All on the run's device except ``log`` (host):

    - ``parameters``: every parameter in float32 (frozen head included), exact;
    - ``gradients and optimizer``: the trainable parameters' gradients and the protocols'
      update temporaries (3 × float32; the protocols keep no per-parameter state), plus the
      float64 copy of the model that tests its scale invariance at start-up;
    - ``entropy queue``: ``queue_size × d × bytes of queue_dtype``, exact (d = the trainable
      parameters, all scale-invariant in these models: an upper bound in general);
    - ``entropy estimate``: the queue read out oldest first in float64 (and its copy in the
      queue's dtype) and the neighbour search;
    - ``noise gradients``: the K = ``noise_batches`` flat float64 gradients of a log point,
      their stack and squared deviations (3 × K × d × 8);
    - ``activations``: the layer outputs of one sample in float32 (:func:`model_size`) times
      the largest of :data:`TRAIN_ACTIVATION_FACTOR` × ``batch_size`` (a training or noise
      batch, forward and backward), :data:`EVAL_ACTIVATION_FACTOR` × the evaluation batch
      (1024, or the larger split when smaller) and twice that factor × the invariance probe
      (float64, no gradients, up to ``batch_size`` training samples): right within a factor of
      2 (measured against the peak memory of the three models);
    - ``data set``: the training and test images (float32) and labels held on the device;
    - ``log``: the metrics rows, :data:`LOG_ROW_BYTES` per log point.

    ``size``: the model's :class:`ModelSize` (default :func:`model_size`).
    """
    c = cfg.resolved()
    data = dataset_shape(c.dataset, c.samples_per_label)
    if size is None:
        size = model_size(c.model, c.width, c.dataset)
    d, n_queue, k = size.trainable, int(c.queue_size), int(c.noise_batches)
    qbytes = _DTYPE_BYTES[c.queue_dtype]
    batch = int(c.batch_size)
    eval_batch = min(EVAL_BATCH, max(data.n_train, data.n_test))
    samples = max(TRAIN_ACTIVATION_FACTOR * batch, EVAL_ACTIVATION_FACTOR * eval_batch,
                  2 * EVAL_ACTIVATION_FACTOR * min(batch, data.n_train))
    logs = _log_points(int(c.iters), int(c.log_every), int(c.log_linear_until), int(c.log_per_decade))
    return {
        "parameters": size.parameters * _FLOAT32,
        "gradients and optimizer": 3 * size.trainable * _FLOAT32 + size.parameters * _FLOAT64,
        "entropy queue": n_queue * d * qbytes,
        "entropy estimate": n_queue * d * (qbytes + _FLOAT64) + _neighbour_search_bytes(n_queue, d),
        "noise gradients": 3 * k * d * _FLOAT64,
        "activations": int(math.ceil(samples * size.activations_per_sample * _FLOAT32)),
        "data set": (data.n_train + data.n_test) * data.sample_bytes,
        "log": logs * LOG_ROW_BYTES,
    }


def check_train_budget(cfg: Any) -> None:
    """Refuse a training configuration that no run finishes (:func:`check_steps`) or whose
    memory estimate (:func:`estimate_train_memory`) exceeds the device's; one line naming the
    flag, the estimate and what to change.

    The flag named is the one, among those that size the largest part, furthest above its
    usual value (the model's default width, 1000 snapshots, 8 noise batches, batch 128). The
    memory check is skipped (never an error) when the model's size cannot be found (a model
    :func:`model_size` has no layout for and torch cannot build on the meta device).
    """
    c = cfg.resolved()
    check_steps(int(c.iters), "--iters")
    try:
        size = model_size(c.model, c.width, c.dataset)
        usual = model_size(c.model, dataclasses.replace(c, width=None).resolved().width, c.dataset)
    except Exception:  # the size cannot be found here: leave it to the run
        return
    parts = estimate_train_memory(c, size)
    data = dataset_shape(c.dataset, c.samples_per_label)
    d = size.trainable
    width = (f"--width {c.width}", _ratio(size.parameters, usual.parameters))
    queue = (f"--queue-size {c.queue_size}", _ratio(c.queue_size, 1000))
    drivers = {
        "parameters": [width], "gradients and optimizer": [width],
        "entropy queue": [queue, width], "entropy estimate": [queue, width],
        "noise gradients": [(f"--noise-batches {c.noise_batches}", _ratio(c.noise_batches, 8)), width],
        "activations": [(f"--batch-size {c.batch_size}", _ratio(c.batch_size, 128)),
                        (width[0], _ratio(size.activations_per_sample, usual.activations_per_sample))],
        "data set": [(f"--dataset {c.dataset}", 1.0)],
        "log": [(f"--log-every {c.log_every}", 1.0)],
    }
    order = {name: _by_ratio(v) for name, v in drivers.items()}
    advice = {name: "lower " + " or ".join(f.split()[0] for f in o) for name, o in order.items()}
    advice["data set"] = "use --samples-per-label for a training subset"
    advice["log"] = "raise --log-every or lower log_linear_until"
    per_sample = format_bytes(size.activations_per_sample * _FLOAT32)
    details = {
        "parameters": f"{c.model} width {c.width}: {size.parameters} float32",
        "gradients and optimizer": f"{size.trainable} trainable parameters",
        "entropy queue": f"{c.queue_size} snapshots x {d} {c.queue_dtype}",
        "entropy estimate": f"{c.queue_size} snapshots x {d} read out in float64",
        "noise gradients": f"{c.noise_batches} gradients x {d} float64",
        "activations": f"batch {c.batch_size} x {per_sample} per sample",
        "data set": f"{data.n_train + data.n_test} images",
        "log": f"{parts['log'] // LOG_ROW_BYTES} log points",
    }
    check_memory(parts, device=c.device, advice=advice, details=details,
                 subject={name: o[0] for name, o in order.items()})


# ---------------------------------------------------------------------------------------
# The isotropic-noise model
# ---------------------------------------------------------------------------------------
#: Block statistics of the isotropic simulator (``N_STATS`` in :mod:`sgdthermo.isotropic.kernels`).
ISOTROPIC_STATS: int = 4
#: Copies of the block statistics alive at the peak: the block sums, their averages, the
#: trace's coarsening and about three blocks' worth of FFT work in the error analysis
BLOCK_COPIES: int = 6
#: Per grid point: the row of the results table (~70 columns), its entropy diagnostics and
#: ~100 rows of the trace (6 columns, with the temporaries that build them).
POINT_TABLE_BYTES: int = 16 * 1024


def estimate_isotropic_memory(n_points: int, dim: int, iters: int, queue_size: int, *,
                              n_blocks: int = 1000) -> dict[str, int]:
    """Peak memory of :func:`sgdthermo.isotropic.simulate_isotropic`, in bytes by part, from
    what it allocates (all float64):

    - ``entropy queue``: ``(G, queue_size, d)``, exact;
    - ``iterates and per-point settings``: the weights and the noise buffer ``(G, d)`` each,
      the random states ``(G, 4)`` and nine per-point vectors, exact;
    - ``block statistics``: ``(G, min(n_blocks, iters), 4)`` block sums, times
      :data:`BLOCK_COPIES` for their averages, the trace and the error analysis;
    - ``per-point tables``: :data:`POINT_TABLE_BYTES` per grid point;
    - ``entropy estimate``: the neighbour search of one point's queue (points are estimated
      one after the other).
    """
    g, d, n = int(n_points), int(dim), int(queue_size)
    blocks = g * min(int(n_blocks), int(iters)) * ISOTROPIC_STATS * _FLOAT64
    return {
        "entropy queue": g * n * d * _FLOAT64,
        "iterates and per-point settings": g * (2 * d * _FLOAT64 + 4 * _INT64 + 9 * _FLOAT64),
        "block statistics": BLOCK_COPIES * blocks,
        "per-point tables": g * POINT_TABLE_BYTES,
        "entropy estimate": _neighbour_search_bytes(n, d + 1),
    }


def check_isotropic_work(n_points: int, dim: int, iters: int, *, grid: str = "the grid") -> None:
    """The grid-size bound: refuse more than :data:`MAX_ISOTROPIC_WORK` coordinate updates
    (grid points × steps × d), and more than :data:`MAX_STEPS` steps."""
    check_steps(int(iters), "--iters", why="over a day per grid point at ~10^7 steps a second")
    work = int(n_points) * int(iters) * int(dim)
    if work > MAX_ISOTROPIC_WORK:
        most = max(1, MAX_ISOTROPIC_WORK // (int(iters) * int(dim)))
        raise ConfigError(
            f"{grid} x --iters {iters} x --dim {dim}: {work:.2e} coordinate updates, more than "
            f"the {MAX_ISOTROPIC_WORK:.0e} any run finishes (years at ~10^8 a second); use at "
            f"most {most} grid points at these --iters and --dim, or fewer --iters")


def check_isotropic_budget(n_points: int, dim: int, iters: int, queue_size: int, *,
                           n_blocks: int = 1000, grid: str | None = None) -> None:
    """Refuse an isotropic run whose memory estimate (:func:`estimate_isotropic_memory`)
    exceeds the CPU's, or that no run finishes (:func:`check_isotropic_work`); one line
    naming the flag, the estimate and what to change.

    ``grid``: how the grid is named in messages (e.g. ``"--lr x --wd: 289 grid points"``).
    """
    g, d, n = int(n_points), int(dim), int(queue_size)
    points = f"{g} grid point{'' if g == 1 else 's'}"
    grid_text = grid or points
    parts = estimate_isotropic_memory(g, d, iters, n, n_blocks=n_blocks)
    gr = (grid_text, _ratio(g, 289))
    dm = (f"--dim {d}", _ratio(d, 3))
    qs = (f"--queue-size {n}", _ratio(n, 1000))
    drivers = {
        "entropy queue": [gr, qs, dm], "iterates and per-point settings": [gr, dm],
        "block statistics": [gr], "per-point tables": [gr], "entropy estimate": [qs, dm],
    }
    order = {name: _by_ratio(v) for name, v in drivers.items()}

    def lower(texts: list[str]) -> str:
        flags = ["the grid size" if t == grid_text else t.split()[0] for t in texts]
        return "lower " + (flags[0] if len(flags) == 1 else ", ".join(flags[:-1]) + " or " + flags[-1])

    advice = {name: lower(o) for name, o in order.items()}
    advice["block statistics"] = advice["per-point tables"] = "use fewer grid points (the N of LO:HI:N)"
    details = {
        "entropy queue": f"{points} x {n} snapshots x {d} float64",
        "iterates and per-point settings": f"{points} x {d} float64",
        "block statistics": f"{points} x {min(int(n_blocks), int(iters))} blocks",
        "per-point tables": points,
        "entropy estimate": f"{n} snapshots x {d} float64",
    }
    check_memory(parts, device="cpu", advice=advice, details=details,
                 subject={name: o[0] for name, o in order.items()})
    check_isotropic_work(g, d, iters, grid=grid_text)
