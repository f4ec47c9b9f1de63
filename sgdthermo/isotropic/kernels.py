r"""Numba kernels of the isotropic-noise simulator (private).

Every grid point owns an independent random stream (xoshiro256++, seeded by SplitMix64
from ``(seed, stream index)``), so a configuration's trajectory does not depend on the
grid it runs in, on the thread count or on how the run is cut into chunks. Gaussian
variates come from a 256-layer ziggurat on 64-bit draws (the construction of Marsaglia &
Tsang, with layer index, sign and a 52-bit mantissa taken from disjoint bits of one draw).

One step of each protocol (docs/theory.md), for the von Mises–Fisher loss
:math:`L(w) = 1 + \langle\mu, w/|w|\rangle` and isotropic noise:

.. math::
    u = w/\rho,\quad c = \langle \mu, u\rangle,\quad
    \nabla L(w) = (\mu - c\,u)/\rho,\quad \xi = P_u(\sigma z)/\rho,\quad
    g_B = \nabla L(w) + \xi

- fixed LR:     :math:`w \leftarrow w - \eta (g_B + \lambda w)`
- fixed ELR:    :math:`w \leftarrow w - \tilde\eta\rho_t^2 (g_B + \lambda w)`
- fixed sphere: :math:`w' = w - \tilde\eta\rho^2 g_B`, :math:`w \leftarrow \rho\, w'/|w'|`

Per step the kernel accumulates, into blocks of ``block_len`` steps, the sums of
:math:`\rho^2`, :math:`L(u) = 1 + c`, :math:`\|\nabla L(u)\|^2 = 1 - c^2` and (fixed sphere)
the excess :math:`|w'| - \rho` (summed directly, so no cancellation against ρ); it pushes :math:`w` into a ring-buffer queue every ``queue_every`` steps once
the step count reaches ``queue_start``.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange, uint64

# ---------------------------------------------------------------------------------------
# Ziggurat tables (256 layers) for the standard normal, built once at import.
# ---------------------------------------------------------------------------------------
_ZIG_R = 3.6541528853610088
_ZIG_V = 0.00492867323399  # area of each layer (and of the base strip with its tail)


def _ziggurat_tables() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    m = float(2**52)
    ki = np.zeros(256, dtype=np.uint64)
    wi = np.zeros(256, dtype=np.float64)
    fi = np.zeros(256, dtype=np.float64)
    dn = _ZIG_R
    tn = dn
    q = _ZIG_V / math.exp(-0.5 * dn * dn)
    ki[0] = np.uint64((dn / q) * m)
    ki[1] = 0
    wi[0] = q / m
    wi[255] = dn / m
    fi[0] = 1.0
    fi[255] = math.exp(-0.5 * dn * dn)
    for i in range(254, 0, -1):
        dn = math.sqrt(-2.0 * math.log(_ZIG_V / dn + math.exp(-0.5 * dn * dn)))
        ki[i + 1] = np.uint64((dn / tn) * m)
        tn = dn
        fi[i] = math.exp(-0.5 * dn * dn)
        wi[i] = dn / m
    return ki, wi, fi


ZIG_KI, ZIG_WI, ZIG_FI = _ziggurat_tables()

PROTO_SPHERE, PROTO_ELR, PROTO_LR = 0, 1, 2
PROTOCOL_CODES = {"fixed-sphere": PROTO_SPHERE, "fixed-elr": PROTO_ELR, "fixed-lr": PROTO_LR}

# statistics accumulated per block (last axis of the block array)
ST_RHO2, ST_LOSS, ST_GRADSQ, ST_NORM_PRE = 0, 1, 2, 3
N_STATS = 4


# ---------------------------------------------------------------------------------------
# Random numbers
# ---------------------------------------------------------------------------------------
@njit(cache=True, inline="always")
def _rotl(x, k):
    return (x << uint64(k)) | (x >> uint64(64 - k))


@njit(cache=True, inline="always")
def _next_u64(s):
    """xoshiro256++ on the state vector ``s`` (uint64[4])."""
    s0 = s[0]
    s1 = s[1]
    s2 = s[2]
    s3 = s[3]
    result = _rotl(s0 + s3, 23) + s0
    t = s1 << uint64(17)
    s2 ^= s0
    s3 ^= s1
    s1 ^= s2
    s0 ^= s3
    s2 ^= t
    s3 = _rotl(s3, 45)
    s[0] = s0
    s[1] = s1
    s[2] = s2
    s[3] = s3
    return result


@njit(cache=True, inline="always")
def _next_double(s):
    """Uniform in [0, 1) with 53 random bits."""
    return float(_next_u64(s) >> uint64(11)) * (1.0 / 9007199254740992.0)


@njit(cache=True, inline="always")
def _normal(s, ki, wi, fi):
    """Standard normal variate by the 256-layer ziggurat."""
    while True:
        r = _next_u64(s)
        idx = r & uint64(0xFF)
        r = r >> uint64(8)
        sign = r & uint64(1)
        rabs = (r >> uint64(1)) & uint64(0x000FFFFFFFFFFFFF)
        x = float(rabs) * wi[idx]
        if sign:
            x = -x
        if rabs < ki[idx]:
            return x
        if idx == 0:
            # tail beyond R (Marsaglia's exponential rejection)
            while True:
                xx = -math.log1p(-_next_double(s)) / _ZIG_R
                yy = -math.log1p(-_next_double(s))
                if yy + yy > xx * xx:
                    if (rabs >> uint64(8)) & uint64(1):
                        return -(_ZIG_R + xx)
                    return _ZIG_R + xx
        else:
            if (fi[idx - 1] - fi[idx]) * _next_double(s) + fi[idx] < math.exp(-0.5 * x * x):
                return x


@njit(cache=True)
def _splitmix64(x):
    x = x + uint64(0x9E3779B97F4A7C15)
    z = x
    z = (z ^ (z >> uint64(30))) * uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> uint64(27))) * uint64(0x94D049BB133111EB)
    return x, z ^ (z >> uint64(31))


@njit(cache=True)
def seed_streams(seed, streams):
    """xoshiro256++ states (len(streams), 4) for ``streams`` under a master ``seed``."""
    out = np.empty((streams.shape[0], 4), dtype=np.uint64)
    for g in range(streams.shape[0]):
        x = uint64(seed) * uint64(0x9E3779B97F4A7C15) ^ (uint64(streams[g]) + uint64(0xD1B54A32D192ED03))
        for j in range(4):
            x, z = _splitmix64(x)
            out[g, j] = z
        for _ in range(16):  # decorrelate nearby seeds
            _next_u64(out[g])
    return out


@njit(cache=True, _nrt=False)
def fill_normals(state, out, ki, wi, fi):
    """Fill ``out`` (1-D) with standard normals from one stream (tests, benchmarks)."""
    for i in range(out.shape[0]):
        out[i] = _normal(state, ki, wi, fi)


# ---------------------------------------------------------------------------------------
# One step of the VMF model, and the grid kernel
# ---------------------------------------------------------------------------------------
@njit(cache=True, inline="always")
def vmf_step(w, z, mu, proto, lr, wd, radius, sigma):
    """One protocol step of ``w`` in place, given the noise draw ``z ~ N(0, I)``.

    Returns ``(rho2, c, norm_pre)``: the squared norm and ⟨μ, u⟩ *before* the step, and
    the norm of the pre-projection iterate w' (fixed sphere; 0 otherwise).
    """
    d = w.shape[0]
    r2 = 0.0
    for k in range(d):
        r2 += w[k] * w[k]
    r = math.sqrt(r2)
    inv_r = 1.0 / r
    c = 0.0
    zu = 0.0
    for k in range(d):
        uk = w[k] * inv_r
        c += mu[k] * uk
        zu += z[k] * uk
    # g_B = (1/ρ)[μ + σ z − (c + σ⟨z,u⟩) u]   (gradient ⟂ w, noise projected ⟂ w)
    a = c + sigma * zu
    norm_pre = 0.0
    if proto == PROTO_LR:
        step = lr * inv_r
        decay = 1.0 - lr * wd
        for k in range(d):
            w[k] = decay * w[k] - step * (mu[k] + sigma * z[k] - a * w[k] * inv_r)
    elif proto == PROTO_ELR:
        eta = lr * r2
        step = eta * inv_r
        decay = 1.0 - eta * wd
        for k in range(d):
            w[k] = decay * w[k] - step * (mu[k] + sigma * z[k] - a * w[k] * inv_r)
    else:
        step = lr * r2 * inv_r
        n2 = 0.0
        for k in range(d):
            w[k] = w[k] - step * (mu[k] + sigma * z[k] - a * w[k] * inv_r)
            n2 += w[k] * w[k]
        norm_pre = math.sqrt(n2)
        scale = radius / norm_pre
        for k in range(d):
            w[k] *= scale
    return r2, c, norm_pre


@njit(cache=True, parallel=True, _nrt=False)
def run_vmf(W, Z, mu, proto, lr, wd, radius, sigma, state, step0, n_steps, block_len,
            blocks, queue, queue_count, queue_every, queue_start, ki, wi, fi):
    """Advance every grid point ``n_steps`` steps from global step ``step0``.

    W (G, d) iterates, in place; Z (G, d) scratch for the noise; lr/wd/radius/sigma (G,);
    state (G, 4) RNG streams; blocks (G, n_blocks, N_STATS) block sums, step t adds to
    block t // block_len; queue (G, N, d) ring buffer with fill counters queue_count (G,).
    Compiled without reference counting (no allocation inside): the atomic reference
    counts of array views otherwise cost more than the whole update.
    """
    G, d = W.shape
    nq = queue.shape[1]
    for g in prange(G):
        w = W[g]
        z = Z[g]
        s = state[g]
        p_lr = lr[g]
        p_wd = wd[g]
        p_rad = radius[g]
        p_sig = sigma[g]
        qc = queue_count[g]
        end = step0 + n_steps
        # next step count t+1 at which w joins the queue (no integer division per step)
        if step0 + 1 <= queue_start:
            next_q = queue_start
        else:
            next_q = queue_start + ((step0 + 1 - queue_start + queue_every - 1) // queue_every) * queue_every
        t = step0
        while t < end:
            b = t // block_len
            t_stop = min((b + 1) * block_len, end)
            acc_r2 = 0.0
            acc_loss = 0.0
            acc_gsq = 0.0
            acc_pre = 0.0
            for tt in range(t, t_stop):
                for k in range(d):
                    z[k] = _normal(s, ki, wi, fi)
                r2, c, npre = vmf_step(w, z, mu, proto, p_lr, p_wd, p_rad, p_sig)
                acc_r2 += r2
                acc_loss += 1.0 + c
                acc_gsq += 1.0 - c * c
                acc_pre += npre - p_rad  # excess |w'| − ρ (fixed sphere), no cancellation
                if tt + 1 == next_q:
                    slot = qc % nq
                    for k in range(d):
                        queue[g, slot, k] = w[k]
                    qc += 1
                    next_q += queue_every
            blocks[g, b, ST_RHO2] += acc_r2
            blocks[g, b, ST_LOSS] += acc_loss
            blocks[g, b, ST_GRADSQ] += acc_gsq
            if proto == PROTO_SPHERE:
                blocks[g, b, ST_NORM_PRE] += acc_pre
            t = t_stop
        queue_count[g] = qc


@njit(cache=True)
def vmf_step_given_noise(w, z, mu, proto, lr, wd, radius, sigma):
    """Non-inlined wrapper of :func:`vmf_step` for tests (same arguments)."""
    return vmf_step(w, z, mu, proto, lr, wd, radius, sigma)
