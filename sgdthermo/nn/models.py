r"""Fully scale-invariant networks of the paper, and tools to find and handle their
scale-invariant parameters.

A parameter group :math:`w` is *scale-invariant* when the training loss satisfies
:math:`L(c\,w) = L(w)` for every :math:`c > 0` (docs/theory.md, "Objects"). The networks
here are built so that **all trainable parameters form one scale-invariant group**, as in
Sadrtdinov et al. (Section 6 and Appendix F), whose models are the scale-invariant ConvNet
and pre-activation ResNet-18 of Lobacheva et al., "On the periodic behavior of neural
network training with batch normalization and weight decay" (reference code
github.com/tipt0p/periodic_behavior_bn_wd, ``nets/convnet_si.py`` and ``nets/resnet_si.py``;
the paper's own code, github.com/isadrtdinov/neural-nets-ideal-gas, reuses them):

- every convolution / hidden linear layer has no bias and its output reaches the loss
  only through a ``BatchNorm(affine=False)`` (train mode: batch statistics), which divides
  out any positive rescaling of the layer's weight;
- the final linear layer (the "head") is **frozen** (``requires_grad=False``), has no bias
  and Frobenius norm ``head_norm`` (10 for cross-entropy, :data:`HEAD_NORM_MSE` = 1.5 for
  MSE, the values of the paper's reference code). It is not scale-invariant (scaling it
  sharpens the softmax) and that is why it is frozen: the trainable rest of the network
  is then fully scale-invariant and the logits live on a fixed scale.

Scale invariance is exact up to the ``eps`` inside BatchNorm:
:math:`(x-\mu)/\sqrt{\mathrm{var}+\epsilon}` changes by a relative
:math:`O(\epsilon/\mathrm{var})` under rescaling. With the paper's parameter norm
:math:`\rho = 1` spread over :math:`10^4`–:math:`10^5` weights the pre-BN variances are
small, so this is not always negligible in float32; :func:`find_scale_invariant` and
:func:`check_scale_invariance` therefore test the *structure* on a float64 copy with a
negligible ``eps`` by default (``norm_eps``).

Which parameters are invariant is found by **testing**, not by names
(:func:`find_scale_invariant`): each trainable tensor is rescaled alone and the
training-mode loss and logits compared. In the pre-activation ResNet only the first
convolution of each block is invariant *by itself*; the stem, the second convolutions and
the shortcut convolutions write into the residual stream and are invariant only *jointly*
per stage (the stream is normalised by the next BatchNorm). The group search of
:func:`find_scale_invariant` finds that joint invariance, so for every model here it
returns all trainable parameters.

Example
-------
>>> import torch
>>> from sgdthermo.nn.models import build_model, find_scale_invariant, set_si_norm, si_norm
>>> torch.manual_seed(0)  # doctest: +ELLIPSIS
<torch._C.Generator object at ...>
>>> model = build_model("convnet", in_channels=1, num_classes=10, width=4)
>>> x, y = torch.randn(32, 1, 8, 8), torch.randint(0, 10, (32,))
>>> si, other = find_scale_invariant(model, x, y)
>>> len(si), len(other)
(4, 0)
>>> set_si_norm(si, 1.0); round(float(si_norm(si)), 6)
1.0
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable, Iterable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .config import DEFAULT_WIDTHS, MODELS

__all__ = [
    "HEAD_NORM_CE",
    "HEAD_NORM_MSE",
    "DEFAULT_WIDTHS",
    "MODEL_NAMES",
    "ConvNet",
    "PreActBlock",
    "PreActResNet18",
    "MLP",
    "build_model",
    "find_scale_invariant",
    "scale_invariant_groups",
    "forked_rng",
    "check_scale_invariance",
    "count_parameters",
    "si_norm",
    "set_si_norm",
]

#: Frozen head norm for cross-entropy (paper, Appendix F; reference code ``last_layer_norm``).
HEAD_NORM_CE: float = 10.0
#: Frozen head norm for the MSE loss (reference code: ``10.0 if loss_fn == 'ce' else 1.5``).
HEAD_NORM_MSE: float = 1.5

#: Model names accepted by :func:`build_model`; the default width multipliers are the
#: paper's experimental settings: ConvNet k = 8 (24,408 trainable parameters on 3-channel
#: input), the "thin" ResNet-18 k = 4 (43,692; the standard ResNet-18 has k = 64), read off
#: the reference code's experiment folders (``convnet8_cifar10``, ``resnet4_cifar10``) and
#: parameter counts. The MLP is ours. Both live in :mod:`sgdthermo.nn.config`.
MODEL_NAMES = MODELS

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


# --------------------------------------------------------------------------- the head


def _frozen_head(in_features: int, num_classes: int, head_norm: float,
                 head_seed: int | None) -> nn.Linear:
    """A bias-free linear layer with Frobenius norm ``head_norm``, frozen.

    The direction is ``nn.Linear``'s default (uniform) initialisation drawn from torch's
    global generator, hence deterministic given ``torch.manual_seed``; with ``head_seed``
    it is drawn from a dedicated generator instead, so the head is the same whatever the
    global seed (the reference code draws the head with its own seed, the same for all
    hyperparameters of a grid). Not scale-invariant, therefore frozen.
    """
    if head_norm <= 0:
        raise ValueError(f"head_norm must be positive, got {head_norm}")
    head = nn.Linear(in_features, num_classes, bias=False)
    with torch.no_grad():
        if head_seed is not None:
            gen = torch.Generator().manual_seed(int(head_seed))
            bound = 1.0 / in_features ** 0.5
            w = torch.empty(num_classes, in_features).uniform_(-bound, bound, generator=gen)
            head.weight.copy_(w)
        head.weight.mul_(head_norm / head.weight.norm())
    head.weight.requires_grad_(False)
    return head


class _HeadMixin:
    """Shared accessors of the frozen head (attribute ``head``)."""

    head: nn.Linear

    @property
    def head_norm(self) -> float:
        """Frobenius norm of the frozen head weight."""
        return float(self.head.weight.detach().norm())


# --------------------------------------------------------------------------- ConvNet


class ConvNet(_HeadMixin, nn.Module):
    r"""The paper's four-layer scale-invariant ConvNet (Lobacheva et al.'s ``ConvNetSI``
    with ``max_depth=3``, itself adapted from the Myrtle / double-descent "mcnn").

    Layout (``k = width``), each convolution 3×3, stride 1, padding 1, no bias::

        conv(in→k)   BN ReLU
        conv(k→2k)   BN ReLU MaxPool2
        conv(2k→4k)  BN ReLU MaxPool2
        conv(4k→8k)  BN ReLU MaxPool2
        global max-pool → flatten → frozen linear(8k→classes, no bias, norm head_norm)

    All BatchNorms are ``affine=False``. On 32×32 CIFAR images the global max-pool is the
    reference's ``MaxPool2d(4)`` on the final 4×4 map; being adaptive it also accepts 8×8
    digits (8→4→2→1) and any input of size ≥ 8.

    Scale invariance: each convolution weight is followed directly by an affine-free
    BatchNorm, so rescaling it alone leaves the network output unchanged; the four conv
    weights are the trainable parameters, ``d = 9 (in·k + 2k² + 8k² + 32k²)``.
    (The reference head has a frozen random bias; ours has none.)
    """

    def __init__(self, in_channels: int = 3, num_classes: int = 10, width: int = 8,
                 head_norm: float = HEAD_NORM_CE, *, head_seed: int | None = None) -> None:
        super().__init__()
        k = int(width)
        if k < 1:
            raise ValueError(f"width must be >= 1, got {width}")
        chans = [in_channels, k, 2 * k, 4 * k, 8 * k]
        layers: list[nn.Module] = []
        for i in range(4):
            layers += [nn.Conv2d(chans[i], chans[i + 1], 3, stride=1, padding=1, bias=False),
                       nn.BatchNorm2d(chans[i + 1], affine=False),
                       nn.ReLU()]
            if i > 0:  # the reference has no pooling after the first layer
                layers.append(nn.MaxPool2d(2))
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveMaxPool2d(1)
        self.head = _frozen_head(8 * k, num_classes, head_norm, head_seed)
        self.width = k

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return self.head(torch.flatten(self.pool(self.features(x)), 1))


# --------------------------------------------------------------------------- ResNet-18


class PreActBlock(nn.Module):
    """Pre-activation basic block with affine-free BatchNorm (reference ``PreActBlock``).

    ``out = conv2(relu(bn2(conv1(relu(bn1(x)))))) + shortcut``, where the shortcut is the
    identity, or, when the block changes resolution or width, ``conv1x1(BN(relu(bn1(x))))``
    — a BatchNorm in the shortcut before downsampling, following Li & Arora (2020,
    "An exponential learning rate schedule for deep learning"), so that every convolution
    weight feeds a normalised path.

    Scale invariance: ``conv1`` is followed by ``bn2`` and is invariant alone; ``conv2``
    and the shortcut convolution add into the residual stream, whose overall scale is
    removed by the next block's ``bn1`` (or the final BN): they are invariant jointly with
    the other tensors writing to the same stream (one group per stage, the stem included).
    """

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes, affine=False)
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes, affine=False)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.shortcut: nn.Module | None = None
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(
                nn.BatchNorm2d(in_planes, affine=False),
                nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        out = F.relu(self.bn1(x))
        short = self.shortcut(out) if self.shortcut is not None else x
        out = self.conv1(out)
        out = self.conv2(F.relu(self.bn2(out)))
        return out + short


class PreActResNet18(_HeadMixin, nn.Module):
    r"""Scale-invariant pre-activation ResNet-18 with width multiplier ``k = width``
    (reference ``PreActResNet(PreActBlock, [2, 2, 2, 2])``, after kuangliu/pytorch-cifar).

    Layout: stem conv3×3(in→k); four stages of two :class:`PreActBlock` with widths
    k, 2k, 4k, 8k and strides 1, 2, 2, 2; final BN → ReLU → global average pool → frozen
    linear(8k→classes, no bias, norm ``head_norm``). Every BatchNorm is affine-free and no
    convolution has a bias. The global pool equals the reference's ``AvgPool2d(4)`` on
    32×32 input and makes 8×8 input work too (8→8→4→2→1).

    Default ``width = 4``: the paper's "thin" ResNet-18 (43,692 trainable parameters on RGB
    input; the standard ResNet-18 is ``k = 64``, used for the overparameterised runs of
    Appendix H with a larger k).

    Scale invariance: the trainable parameters are the 20 convolution weights; they are
    jointly scale-invariant (see :class:`PreActBlock` for which are invariant alone).
    """

    def __init__(self, in_channels: int = 3, num_classes: int = 10, width: int = 4,
                 head_norm: float = HEAD_NORM_CE, *, head_seed: int | None = None) -> None:
        super().__init__()
        k = int(width)
        if k < 1:
            raise ValueError(f"width must be >= 1, got {width}")
        self.conv1 = nn.Conv2d(in_channels, k, 3, stride=1, padding=1, bias=False)
        planes = [k, 2 * k, 4 * k, 8 * k]
        strides = [1, 2, 2, 2]
        in_planes = k
        stages: list[nn.Module] = []
        for p, s in zip(planes, strides):
            stages.append(nn.Sequential(PreActBlock(in_planes, p, s), PreActBlock(p, p, 1)))
            in_planes = p
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.bn = nn.BatchNorm2d(8 * k, affine=False)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = _frozen_head(8 * k, num_classes, head_norm, head_seed)
        self.width = k

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        out = self.conv1(x)
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        out = self.pool(F.relu(self.bn(out)))
        return self.head(torch.flatten(out, 1))


# --------------------------------------------------------------------------- MLP


class MLP(_HeadMixin, nn.Module):
    """Small scale-invariant MLP for fast tests: ``flatten → [Linear(no bias) →
    BatchNorm1d(affine=False) → ReLU] × len(hidden) → frozen linear head``.

    Scale invariance: every hidden ``Linear`` weight is followed directly by an affine-free
    BatchNorm, so each is invariant alone; they are the trainable parameters.
    """

    def __init__(self, in_features: int, num_classes: int, hidden: Sequence[int] = (64, 64),
                 head_norm: float = HEAD_NORM_CE, *, head_seed: int | None = None) -> None:
        super().__init__()
        hidden = tuple(int(h) for h in hidden)
        if not hidden or min(hidden) < 1:
            raise ValueError(f"hidden must be a non-empty sequence of positive sizes, got {hidden}")
        layers: list[nn.Module] = []
        prev = int(in_features)
        for h in hidden:
            layers += [nn.Linear(prev, h, bias=False), nn.BatchNorm1d(h, affine=False), nn.ReLU()]
            prev = h
        self.features = nn.Sequential(*layers)
        self.head = _frozen_head(prev, num_classes, head_norm, head_seed)
        self.in_features = int(in_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return self.head(self.features(torch.flatten(x, 1)))


# --------------------------------------------------------------------------- factory


def build_model(name: str, *, in_channels: int, num_classes: int, width: int | None = None,
                head_norm: float = HEAD_NORM_CE, image_size: int | None = None,
                head_seed: int | None = None) -> nn.Module:
    """Build one of :data:`MODEL_NAMES` with its frozen head.

    ``width``: the width multiplier k (ConvNet, ResNet-18) or the hidden size of both MLP
    layers; ``None`` uses :data:`DEFAULT_WIDTHS` (ConvNet 8, ResNet-18 4, MLP 64).
    ``image_size`` is needed only by the MLP (``in_features = in_channels·image_size²``).
    ``head_seed``: draw the head from its own generator (see :func:`ConvNet`).
    """
    key = name.lower()
    if key not in MODEL_NAMES:
        raise ValueError(f"unknown model '{name}': expected one of {', '.join(MODEL_NAMES)}")
    k = DEFAULT_WIDTHS[key] if width is None else int(width)
    if key == "convnet":
        return ConvNet(in_channels, num_classes, k, head_norm, head_seed=head_seed)
    if key == "resnet18":
        return PreActResNet18(in_channels, num_classes, k, head_norm, head_seed=head_seed)
    if image_size is None:
        raise ValueError("model 'mlp' needs image_size (in_features = in_channels * image_size**2)")
    return MLP(in_channels * image_size * image_size, num_classes, (k, k), head_norm,
               head_seed=head_seed)


# --------------------------------------------------------------------------- invariance tests


def count_parameters(params: Iterable[torch.Tensor]) -> int:
    """Total number of scalar entries ``d`` of a parameter group."""
    return int(sum(p.numel() for p in params))


def si_norm(params: Iterable[torch.Tensor]) -> torch.Tensor:
    """The norm ``ρ`` of a parameter group seen as one flat vector (0-dim tensor, detached)."""
    params = list(params)
    if not params:
        raise ValueError("si_norm of an empty parameter group")
    return torch.linalg.vector_norm(torch.stack([p.detach().norm() for p in params]))


@torch.no_grad()
def set_si_norm(params: Iterable[torch.Tensor], rho: float) -> None:
    """Rescale a parameter group in place so that its joint norm is ``rho`` (the paper
    initialises the trainable, scale-invariant group to ``ρ = 1``). Direction is kept."""
    params = list(params)
    if rho <= 0:
        raise ValueError(f"rho must be positive, got {rho}")
    norm = float(si_norm(params))
    if norm == 0.0 or norm != norm:
        raise ValueError(f"cannot rescale a parameter group of norm {norm}")
    scale = rho / norm
    for p in params:
        p.mul_(scale)


@contextlib.contextmanager
def forked_rng(device: torch.device):
    """Run a block with torch's random state (CPU, and ``device`` if CUDA) forked: whatever the
    block draws leaves the caller's random stream as it was."""
    devices = [device.index if device.index is not None else torch.cuda.current_device()] \
        if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        yield


def _split_invariant(probe: "_Probe", factor: float, rtol: float, groupwise: bool) -> tuple[list[int], list[int]]:
    """The probe's trainable tensors that are scale-invariant alone, and those invariant only
    together with them (greedy pruning; see :func:`find_scale_invariant`), as indices. Tensors
    that can be zeroed without effect (inert) are in neither."""
    def invariant(idx: Sequence[int], f: float = factor) -> bool:
        dl, dz = probe.change(idx, f)
        return dl <= rtol and dz <= rtol

    alone: list[int] = []
    rest: list[int] = []
    for i, p in enumerate(probe.orig):
        if not p.requires_grad:
            continue
        if invariant([i]):
            if not invariant([i], 0.0):  # else inert: no influence on the loss at all
                alone.append(i)
        else:
            rest.append(i)
    group = _jointly_radial(probe, rest) if groupwise and rest else []
    while group and not invariant(alone + group):
        scores = [max(probe.change(alone + [g for g in group if g != j], factor)) for j in group]
        group.pop(min(range(len(group)), key=scores.__getitem__))
    return alone, group


#: Tolerance of the linear relation Σ r_i = 0, relative to the largest radial derivative (the
#: derivatives are exact: a relation holds to ~1e-15, a non-relation misses by far more; above
#: the linear-programme solver's own feasibility tolerance, 1e-7).
_RELATION_RTOL: float = 1e-6


def _radial_derivatives(probe: "_Probe", idx: Sequence[int]) -> np.ndarray:
    r"""The radial derivatives :math:`r_i = \partial_t f(w_i(1+t))|_{t=0} = J_i w_i` of the
    probe's outputs f in the tensors ``idx``, exactly (reverse mode, no finite differences that
    a ReLU's kink could spoil), as the columns of a K × n matrix: the outputs are projected on
    K ≥ n fixed random directions (which keeps every linear relation among the columns), one
    backward pass each."""
    params = [probe.params[i] for i in idx]
    saved = [b.clone() for b in probe.model.buffers()]
    try:
        R = _projected_radial(probe, params)
    finally:  # after the backward passes, which may need the buffers as they were
        with torch.no_grad():
            for b, s in zip(probe.model.buffers(), saved):
                b.copy_(s)
    return R


def _projected_radial(probe: "_Probe", params: list[torch.Tensor]) -> np.ndarray:
    with torch.enable_grad():
        out = probe.forward()
        m, n = out.numel(), len(params)
        k = min(m, n + 8)
        gen = torch.Generator().manual_seed(0)
        U = torch.eye(m, dtype=out.dtype) if k == m else torch.randn(k, m, generator=gen, dtype=out.dtype)
        U = U.to(out.device)
        R = np.zeros((k, n))
        for a in range(k):
            grads = torch.autograd.grad(out, params, grad_outputs=U[a], retain_graph=a < k - 1, allow_unused=True)
            R[a] = [0.0 if g is None else float((g * p.detach()).sum()) for g, p in zip(grads, params)]
    return R


def _jointly_radial(probe: "_Probe", rest: Sequence[int]) -> list[int]:
    r"""The tensors among ``rest`` that can be scale-invariant together, by linear algebra: a
    set S is invariant only if :math:`\sum_{i\in S} r_i = 0`, with :math:`r_i` the radial
    derivative of the outputs in tensor i (:func:`_radial_derivatives`; Euler's theorem for a
    function homogeneous of degree 0). The largest such S solves the linear programme
    max Σ c_i subject to :math:`|\sum_i c_i r_i| \le \epsilon`, :math:`0 \le c_i \le 1` (an
    equal scaling of the tensors; relations with other signs, such as an attention layer's
    query and key weights trading scale, are not invariances). The tensors with c_i > ½ are the
    candidates, which the caller verifies by finite scaling and prunes; none: nothing is
    jointly invariant and no pruning is needed."""
    from scipy.optimize import linprog

    try:
        R = _radial_derivatives(probe, rest)
    except RuntimeError:  # an operation without a derivative: leave it to the finite test
        return list(rest)
    if not np.isfinite(R).all():
        return list(rest)
    R = R / float(np.abs(R).max() or 1.0)
    n = len(rest)
    res = linprog(-np.ones(n), A_ub=np.vstack([R, -R]), b_ub=np.full(2 * R.shape[0], _RELATION_RTOL),
                  bounds=[(0.0, 1.0)] * n, method="highs")
    if res.status != 0:
        return list(rest)
    return [i for i, c in zip(rest, res.x) if c > 0.5]


class _Probe:
    """A float64 deep copy of a model, in train mode, for invariance tests.

    The copy keeps the original untouched (BatchNorm running statistics included). Every
    normalisation ``eps`` is replaced by ``norm_eps`` (unless None) so that the test sees
    the structure and not the ``eps/var`` effect. Forward passes run under a forked,
    re-seeded RNG so stochastic layers draw the same noise each time and the caller's
    random stream is not consumed.
    """

    def __init__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss_fn: LossFn,
                 dtype: torch.dtype, norm_eps: float | None) -> None:
        self._copy(model, dtype, norm_eps)
        self.x = x.to(dtype) if torch.is_floating_point(x) else x
        self.y = y.to(dtype) if torch.is_floating_point(y) else y
        self.loss_fn = loss_fn
        self.logits0, self.loss0 = self.evaluate()

    def _copy(self, model: nn.Module, dtype: torch.dtype, norm_eps: float | None) -> None:
        self.model = copy.deepcopy(model).to(dtype).train()
        if norm_eps is not None:
            for m in self.model.modules():
                if isinstance(getattr(m, "eps", None), float):
                    m.eps = float(norm_eps)
        self.orig = list(model.parameters())
        self.params = list(self.model.parameters())
        self.index = {id(p): i for i, p in enumerate(self.orig)}

    def indices(self, params: Iterable[torch.Tensor]) -> list[int]:
        out = []
        for p in params:
            if id(p) not in self.index:
                raise ValueError("a parameter is not a parameter of the model")
            out.append(self.index[id(p)])
        return out

    @torch.no_grad()
    def evaluate(self) -> tuple[torch.Tensor, float]:
        with forked_rng(self.x.device):
            torch.manual_seed(0)
            logits = self.model(self.x)
            loss = self.loss_fn(logits, self.y)
        return logits.detach(), float(loss)

    def forward(self) -> torch.Tensor:
        """The flat outputs :meth:`evaluate` compares, differentiable (in train mode a forward
        pass moves the copy's BatchNorm statistics; the caller restores them)."""
        with forked_rng(self.x.device):
            torch.manual_seed(0)
            return self.model(self.x).reshape(-1)

    @torch.no_grad()
    def change(self, idx: Sequence[int], factor: float) -> tuple[float, float]:
        """Relative change of (loss, logits) when the tensors ``idx`` are multiplied by
        ``factor`` together (``factor = 0`` zeroes them)."""
        saved = [self.params[i].detach().clone() for i in idx]
        try:
            for i in idx:
                self.params[i].mul_(factor)
            logits, loss = self.evaluate()
        finally:
            for i, s in zip(idx, saved):
                self.params[i].copy_(s)
        tiny = torch.finfo(torch.float64).tiny
        dl = abs(loss - self.loss0) / max(abs(self.loss0), tiny)
        dz = float((logits - self.logits0).abs().max()) / max(float(self.logits0.abs().max()), tiny)
        if loss != loss or not torch.isfinite(logits).all():
            return float("inf"), float("inf")
        return dl, dz


def find_scale_invariant(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                         loss_fn: LossFn = F.cross_entropy, *, factor: float = 3.0,
                         rtol: float = 1e-4, groupwise: bool = True,
                         norm_eps: float | None = 1e-16,
                         dtype: torch.dtype = torch.float64,
                         ) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    r"""Split the trainable parameters into (scale-invariant group, other trainable ones),
    by testing, not by names.

    1. **Alone**: each trainable tensor is multiplied by ``factor`` alone and the
       training-mode loss and logits on the batch ``(x, y)`` are compared; it is invariant
       when both change by at most ``rtol`` (relative). A tensor that can even be *zeroed*
       without effect (e.g. a bias right before a BatchNorm, or an all-zero tensor, for
       which rescaling is no test) does not influence the loss at all; it is reported
       among the *other* parameters, since it has no direction on a sphere.
    2. **Jointly** (``groupwise=True``): tensors not invariant alone may be invariant
       together (the residual-stream convolutions of a ResNet, one group per stage). Let A
       be the tensors invariant alone and R the rest; if scaling A∪R by ``factor`` is
       invariant the whole set is returned, else R is pruned greedily (each round drops
       the tensor whose removal leaves the smallest change) until the remainder is
       invariant. The result is always a verified invariant set; it is the maximal one
       when at most one tensor spoils the joint invariance at each round (all models of
       this package, plain BN-affine networks), and may be smaller otherwise. Cost: one
       pass when R is empty or jointly invariant, :math:`O(|R|^2)` passes otherwise.

    The tests run on a deep copy of the model (BatchNorm running statistics of ``model``
    are untouched) in ``dtype`` (float64: rounding ~1e-15, far below ``rtol``), with every
    normalisation ``eps`` set to ``norm_eps`` (negligible, 1e-16, by default; ``None``
    keeps the model's own): the BN ``eps`` breaks invariance by a relative
    :math:`O(\epsilon/\mathrm{var})` that at small weight norms can exceed ``rtol`` and
    would hide the structure. A genuinely non-invariant tensor changes the loss by O(1)
    for ``factor = 3``, so ``rtol = 1e-4`` separates the two cases by many orders of
    magnitude. The batch should hold a few dozen samples of several classes.

    Returns the parameters (objects of ``model``) in ``model.parameters()`` order.
    """
    if factor <= 0 or factor == 1:
        raise ValueError(f"factor must be positive and != 1, got {factor}")
    probe = _Probe(model, x, y, loss_fn, dtype, norm_eps)
    trainable = [i for i, p in enumerate(probe.orig) if p.requires_grad]
    alone, group = _split_invariant(probe, factor, rtol, groupwise)
    si_idx = sorted(alone + group)
    si_set = set(si_idx)
    si = [probe.orig[i] for i in si_idx]
    other = [probe.orig[i] for i in trainable if i not in si_set]
    return si, other


def _float_tensors(obj: object, dtype: torch.dtype | None = None) -> list[torch.Tensor]:
    """The floating-point tensors in a model's output (or input): a tensor, or any nesting
    of tuples, lists and mappings (a Hugging Face ``ModelOutput`` is a mapping)."""
    if isinstance(obj, torch.Tensor):
        return [obj] if torch.is_floating_point(obj) else []
    if isinstance(obj, dict) or hasattr(obj, "items"):
        return [t for v in obj.values() for t in _float_tensors(v)]
    if isinstance(obj, (list, tuple)):
        return [t for v in obj for t in _float_tensors(v)]
    return []


def _to_dtype(obj: object, dtype: torch.dtype) -> object:
    if isinstance(obj, torch.Tensor):
        return obj.to(dtype) if torch.is_floating_point(obj) else obj
    if isinstance(obj, dict):
        return {k: _to_dtype(v, dtype) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_dtype(v, dtype) for v in obj)
    return obj


class _ForwardProbe(_Probe):
    """A :class:`_Probe` that compares the model's outputs on any inputs ``(args, kwargs)``
    (no loss needed): every floating tensor the forward pass returns."""

    def __init__(self, model: nn.Module, args: tuple, kwargs: dict, dtype: torch.dtype,
                 norm_eps: float | None) -> None:
        self.args, self.kwargs = _to_dtype(tuple(args), dtype), _to_dtype(dict(kwargs), dtype)
        first = next(iter(_float_tensors((args, kwargs))), None)
        self.x = first if first is not None else torch.zeros(0)
        self._copy(model, dtype, norm_eps)
        self.logits0, self.loss0 = self.evaluate()
        if self.logits0.numel() == 0:
            raise ValueError("the model's forward pass returns no floating-point tensor to compare")

    @torch.no_grad()
    def evaluate(self) -> tuple[torch.Tensor, float]:
        with forked_rng(self.x.device):
            torch.manual_seed(0)
            out = self.model(*self.args, **self.kwargs)
        flat = [t.detach().reshape(-1) for t in _float_tensors(out)]
        z = torch.cat(flat) if flat else torch.zeros(0, dtype=torch.float64)
        return z, float(z.norm())

    def forward(self) -> torch.Tensor:  # noqa: D102 - as _Probe.forward, on any inputs
        with forked_rng(self.x.device):
            torch.manual_seed(0)
            out = self.model(*self.args, **self.kwargs)
        return torch.cat([t.reshape(-1) for t in _float_tensors(out)])


def scale_invariant_groups(model: nn.Module, args: Sequence[object] = (), kwargs: dict | None = None, *,
                           factor: float = 3.0, rtol: float = 1e-4, norm_eps: float | None = 1e-16,
                           dtype: torch.dtype = torch.float64,
                           ) -> tuple[dict[str, list[nn.Parameter]], list[str]]:
    r"""The scale-invariant groups of any model, found by testing its forward pass on one batch
    ``model(*args, **kwargs)``: ``({group name: [parameters]}, [names of the other trainable
    parameters])``.

    Each trainable tensor whose scaling by ``factor`` leaves every floating-point output
    unchanged (relative ``rtol``) is a group of its own, named after the parameter (a layer's
    weight followed by BatchNorm, LayerNorm, GroupNorm or RMSNorm). Tensors that are invariant
    only together (the convolutions feeding a residual stream) are found as in
    :func:`find_scale_invariant` and form one group ``"joint"``. A tensor whose zeroing changes
    nothing has no direction and is listed among the others. The test runs on a float64 copy
    in train mode with normalisation ``eps`` set to ``norm_eps`` (see
    :func:`find_scale_invariant`); the model is not modified.
    """
    if factor <= 0 or factor == 1:
        raise ValueError(f"factor must be positive and != 1, got {factor}")
    names = {id(p): n for n, p in model.named_parameters()}
    probe = _ForwardProbe(model, tuple(args), dict(kwargs or {}), dtype, norm_eps)

    alone, joint = _split_invariant(probe, factor, rtol, groupwise=True)
    groups: dict[str, list[nn.Parameter]] = {names[id(probe.orig[i])]: [probe.orig[i]] for i in alone}
    if joint:
        groups["joint"] = [probe.orig[i] for i in sorted(joint)]
    in_groups = {id(p) for ps in groups.values() for p in ps}
    others = [n for n, p in model.named_parameters() if p.requires_grad and id(p) not in in_groups]
    return groups, others


def check_scale_invariance(model: nn.Module, params: Iterable[torch.Tensor], x: torch.Tensor,
                           y: torch.Tensor, loss_fn: LossFn = F.cross_entropy,
                           factors: Sequence[float] = (0.5, 3.0), *,
                           norm_eps: float | None = 1e-16,
                           dtype: torch.dtype = torch.float64) -> float:
    r"""Max relative change of the training-mode loss on ``(x, y)`` when the whole group
    ``params`` is multiplied by each of ``factors`` together: ~1e-15 confirms
    :math:`L(c\,w) = L(w)`; O(1) means the group is not scale-invariant.

    Runs on a deep copy (``model`` is not modified, running statistics included) in
    ``dtype`` with normalisation ``eps`` set to ``norm_eps``; pass ``norm_eps=None`` to
    measure the model's own, ``eps``-limited invariance instead.
    """
    probe = _Probe(model, x, y, loss_fn, dtype, norm_eps)
    idx = probe.indices(params)
    worst = 0.0
    for f in factors:
        dl, _ = probe.change(idx, float(f))
        worst = max(worst, dl)
    return worst
