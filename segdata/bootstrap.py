"""Confidence intervals over images: the bias-corrected and accelerated (BCa) bootstrap on
per-image additive sums. The one home of confidence intervals in segdata (the consistency
analysis, ``segdata eval``).

A figure of a segmentation dataset (mIoU, a bucket's mIoU, pixel accuracy, a difference of two
of them) is a function of sums over images: per-class TP, ground-truth and predicted pixels.
A bootstrap resample of the images is then a vector of image multiplicities ``w`` (``n`` draws
with replacement), and its sums are ``w @ per_image``: no pixel is looked at again.

Method (Efron & Tibshirani, *An Introduction to the Bootstrap*, 14.3 and 15.4; the formulas of
``scipy.stats.bootstrap(method="BCa")``, compared with it in ``tests/test_bootstrap.py``):

- ``theta_hat``: the statistic of the totals; ``theta_b``: of ``n_resamples`` resamples;
- bias correction ``z0 = Phi^-1((#{theta_b < theta_hat} + #{theta_b <= theta_hat}) / (2 B))``
  (ties count half, as scipy does);
- acceleration ``a = sum d_i^3 / (6 (sum d_i^2)^1.5)``, ``d_i = mean(theta_(i)) - theta_(i)``,
  ``theta_(i)`` the statistic without image ``i`` (sums ``total - per_image[i]``);
- ``alpha_1,2 = Phi(z0 + (z0 + z) / (1 - a (z0 + z)))`` for ``z = Phi^-1((1 -+ confidence) / 2)``;
  the interval is the ``alpha_1`` and ``alpha_2`` quantiles of ``theta_b`` (linear
  interpolation, ``np.quantile``'s default, as scipy).

With a biased statistic (an mIoU whose rare classes lose their true positives in the resamples
that leave out their few images, but keep false positives elsewhere, and score 0) most
resamples fall below the estimate and the percentile interval lies low; ``z0`` moves BCa's
quantiles up by the bias the resamples show. It does not make every interval hold its estimate:
the bounds fall on either side of it exactly when ``|z0| <= Phi^-1((1 + confidence) / 2)``
(with ``a (z0 +- z) < 1``), which is the condition under which the percentile interval holds it
too; beyond, BCa's interval lies on the bias-corrected side of the estimate, and where every
resample lies on one side it is undefined (``docs/consistency.md``, "Confidence intervals").

Conventions, per figure (each column of the statistic):

- a NaN estimate gives a NaN interval; NaN resamples (the figure undefined in that resample, e.g.
  a bucket none of whose classes it holds) are left out, and NaN jackknife values likewise;
- every remaining resample equal (a figure that cannot vary): ``[estimate, estimate]``;
- ``a`` is 0 where the jackknife values are all equal (or fewer than two are defined);
- where the estimate lies beyond every resample (``z0`` infinite) BCa is undefined: NaN interval
  (scipy returns NaN there too).

Random draws: ``numpy.random.default_rng(seed)``; resample ``b`` (in order ``0 .. B-1``) is
``bincount(rng.integers(0, n, size=n), minlength=n)``, one call per resample, so results do not
depend on how the resamples are batched.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from scipy.special import ndtr, ndtri

__all__ = ["BootstrapResult", "bca_intervals", "bca_bounds"]

#: float64 entries per batch of resampled (or leave-one-out) sums: 32 MiB
_BUDGET = 1 << 22
#: a (n, C) per-image array with at most this share of non-zero entries is resampled as CSR
_SPARSE_DENSITY = 0.05


@dataclass(frozen=True)
class BootstrapResult:
    """BCa intervals of ``M`` figures (the columns of the statistic).

    Attributes
    ----------
    estimate, low, high : ndarray (M,) float64
        The figures of the totals and their interval bounds (NaN where undefined; see the module
        docstring).
    confidence : float
        Two-sided level, e.g. 0.95.
    n_resamples, seed : int
    z0, acceleration : ndarray (M,) float64
        BCa's bias correction and acceleration (NaN where the interval is not computed by BCa:
        NaN estimate, no resample, or all resamples equal).
    distribution : ndarray (n_resamples, M) float64
        The figures of every resample (NaN where undefined).
    method : str
        ``"bca"``.
    """

    estimate: np.ndarray
    low: np.ndarray
    high: np.ndarray
    confidence: float
    n_resamples: int
    seed: int
    z0: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0))
    acceleration: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0))
    distribution: np.ndarray = field(repr=False, default_factory=lambda: np.zeros((0, 0)))
    method: str = "bca"

    def __post_init__(self) -> None:
        m = np.shape(self.estimate)
        for name in ("low", "high"):
            if np.shape(getattr(self, name)) != m:
                raise ValueError(f"{name}: expected shape {m}, got {np.shape(getattr(self, name))}")

    @property
    def bias(self) -> np.ndarray:
        """(M,) the bootstrap's estimate of each figure's bias: the mean of its defined resamples
        less the estimate (NaN where none is defined). A bias beyond the interval's reach is why
        an interval can lie beside its estimate or be undefined."""
        ok = ~np.isnan(self.distribution)
        count = ok.sum(axis=0)
        total = np.where(ok, self.distribution, 0.0).sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(count > 0, total / np.maximum(count, 1), np.nan) - self.estimate

    def interval(self, i: int) -> list:
        """``[low, high]`` of figure ``i`` as Python floats, ``None`` where NaN (JSON-ready)."""
        return [_none(self.low[i]), _none(self.high[i])]

    def intervals(self, names) -> dict:
        """``{name: [low, high]}`` for the figures in column order (:meth:`interval`)."""
        return {name: self.interval(i) for i, name in enumerate(names)}


def _none(x) -> float | None:
    x = float(x)
    return None if math.isnan(x) else x


class _Column:
    """One per-image array, flattened to (n, C) float64: dense over its non-zero columns, or CSR."""

    def __init__(self, values, n: int | None):
        if hasattr(values, "tocsr"):  # a scipy sparse matrix (n, C)
            m = values.tocsr().astype(np.float64)
            self.shape = m.shape[1:]
            self.sparse = m
            self.total = np.asarray(m.sum(axis=0), dtype=np.float64).ravel()
            self.n = m.shape[0]
        else:
            a = np.asarray(values)
            if a.ndim < 1:
                raise ValueError(f"per-image sums need images on axis 0, got a scalar of shape {a.shape}")
            if not len(a):
                raise ValueError("per_image holds no image: nothing to resample")
            self.shape = a.shape[1:]
            self.n = a.shape[0]
            flat = a.reshape(len(a), -1)
            self.total = flat.sum(axis=0).astype(np.float64)
            nnz = np.count_nonzero(flat)
            if flat.size >= 4096 and nnz <= _SPARSE_DENSITY * flat.size:
                from scipy import sparse

                self.sparse = sparse.csr_matrix(flat).astype(np.float64)  # no dense float copy
            else:
                self.sparse = None
                self.columns = np.flatnonzero(flat.any(axis=0))
                self.dense = np.ascontiguousarray(flat[:, self.columns], dtype=np.float64)
        if n is not None and self.n != n:
            raise ValueError(f"per-image sums disagree on the number of images: {self.n} and {n}")
        self.width = int(self.total.size)

    def resampled(self, weights: np.ndarray) -> np.ndarray:
        """Sums under image weights (B, n): (B, *shape)."""
        if self.sparse is not None:
            out = np.asarray((self.sparse.T @ weights.T).T, dtype=np.float64)
        else:
            out = np.zeros((len(weights), self.width))
            if len(self.columns):
                out[:, self.columns] = weights @ self.dense
        return out.reshape(len(weights), *self.shape)

    def left_out(self, start: int, stop: int) -> np.ndarray:
        """Sums without image ``i`` for ``i`` in ``start .. stop-1``: (stop - start, *shape)."""
        if self.sparse is not None:
            rows = self.sparse[start:stop].toarray()
        else:
            rows = np.zeros((stop - start, self.width))
            rows[:, self.columns] = self.dense[start:stop]
        return (self.total - rows).reshape(stop - start, *self.shape)


def _call(statistic, sums: dict, batch: int) -> np.ndarray:
    out = np.asarray(statistic(sums), dtype=np.float64)
    if out.ndim == 0 or out.shape[0] != batch:
        raise ValueError(f"the statistic must return (B, M) figures for a batch of B sums, got shape {out.shape}")
    return out.reshape(batch, -1)


def bca_bounds(
    estimate: float, resamples: np.ndarray, jackknife: np.ndarray, confidence: float
) -> tuple[float, float, float, float]:
    """BCa interval of one figure from its bootstrap and jackknife values.

    Parameters
    ----------
    estimate : float
        The figure of the whole sample.
    resamples : ndarray (B,)
        The figure of each bootstrap resample (NaN ones are left out).
    jackknife : ndarray (n,)
        The figure without each image in turn (NaN ones are left out).
    confidence : float
        Two-sided level in (0, 1).

    Returns
    -------
    (low, high, z0, acceleration) : floats, NaN where undefined (module docstring).
    """
    nan = float("nan")
    estimate = float(estimate)
    tb = np.asarray(resamples, dtype=np.float64)
    tb = tb[~np.isnan(tb)]
    if math.isnan(estimate) or not len(tb):
        return nan, nan, nan, nan
    if tb.min() == tb.max():
        return estimate, estimate, nan, nan
    share = (np.count_nonzero(tb < estimate) + np.count_nonzero(tb <= estimate)) / (2 * len(tb))
    z0 = float(ndtri(share))
    if not math.isfinite(z0):
        return nan, nan, z0, nan
    jk = np.asarray(jackknife, dtype=np.float64)
    jk = jk[~np.isnan(jk)]
    a = 0.0
    if len(jk) >= 2:
        d = jk.mean() - jk
        den = float((d**2).sum())
        if den > 0:
            a = float((d**3).sum()) / (6.0 * den**1.5)
    alpha = (1.0 - confidence) / 2.0
    z_alpha = float(ndtri(alpha))
    bounds = []
    for z in (z_alpha, -z_alpha):
        num = z0 + z
        bounds.append(float(ndtr(z0 + num / (1.0 - a * num))))
    if any(math.isnan(b) for b in bounds):
        return nan, nan, z0, a
    low, high = np.quantile(tb, bounds)
    return float(low), float(high), z0, a


def bca_intervals(
    per_image: dict,
    statistic: Callable[[dict], np.ndarray],
    n_resamples: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
    *,
    batch: int | None = None,
    threads: int = 1,
) -> BootstrapResult:
    """BCa bootstrap intervals over images of the figures ``statistic`` computes from sums.

    Parameters
    ----------
    per_image : dict of str -> ndarray (n, ...)
        Per-image additive sums, images on axis 0 (e.g. ``tp``, ``gt``, ``pred`` each (n, K)
        int64 pixel counts); a 2-D ``scipy.sparse`` matrix (n, C) is accepted too. Totals are sums
        over axis 0. Counts are resampled as float64 (exact below 2**53).
    statistic : callable
        ``statistic(sums) -> (B, M)``: ``sums`` has the keys of ``per_image``, each a float64
        array (B, ...) (a batch of B resamples, or of B leave-one-out sums; the totals come as a
        batch of one); returns M figures per row, NaN where undefined. It must be vectorised over
        the leading axis and must not keep references to ``sums``.
    n_resamples : int
        Bootstrap resamples B (>= 1).
    seed : int
        Seed of ``numpy.random.default_rng`` (draws: module docstring).
    confidence : float
        Two-sided level in (0, 1).
    batch : int, optional
        Resamples (and leave-one-out images) per call of ``statistic``; default: as many as fit
        in 32 MiB of sums. The result does not depend on it.
    threads : int
        Batches computed at once on threads (sparse products release the GIL).

    Returns
    -------
    BootstrapResult

    Examples
    --------
    >>> num = np.array([3, 1, 4, 1, 5, 9, 2, 6]); den = np.array([4, 2, 5, 3, 5, 9, 4, 7])
    >>> r = bca_intervals({"num": num, "den": den}, lambda s: (s["num"] / s["den"])[:, None], 2000)
    >>> bool(r.low[0] < r.estimate[0] < r.high[0]), round(float(r.estimate[0]), 4)
    (True, 0.7949)
    """
    if not per_image:
        raise ValueError("per_image is empty: nothing to resample")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples}")
    if batch is not None and batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    columns: dict[str, _Column] = {}
    n = None
    for key, values in per_image.items():
        columns[key] = col = _Column(values, n)
        n = col.n
    if not n:
        raise ValueError("per_image holds no image: nothing to resample")
    width = sum(c.width for c in columns.values())
    step = batch or max(1, _BUDGET // max(width, n, 1))

    estimate = _call(statistic, {k: c.total.reshape(1, *c.shape) for k, c in columns.items()}, 1)[0]

    rng = np.random.default_rng(seed)

    def weights(count: int) -> np.ndarray:
        w = np.empty((count, n))
        for b in range(count):
            w[b] = np.bincount(rng.integers(0, n, size=n), minlength=n)
        return w

    def resampled(w: np.ndarray) -> np.ndarray:
        return _call(statistic, {k: c.resampled(w) for k, c in columns.items()}, len(w))

    def left_out(start: int) -> np.ndarray:
        stop = min(n, start + step)
        return _call(statistic, {k: c.left_out(start, stop) for k, c in columns.items()}, stop - start)

    sizes = [min(step, n_resamples - s) for s in range(0, n_resamples, step)]
    if threads > 1 and len(sizes) > 1:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(threads) as pool:
            parts = []
            for wave in range(0, len(sizes), threads):  # draws in order, at most `threads` batches held
                parts += list(pool.map(resampled, [weights(m) for m in sizes[wave : wave + threads]]))
            jack = list(pool.map(left_out, range(0, n, step)))
    else:
        parts = [resampled(weights(m)) for m in sizes]
        jack = [left_out(start) for start in range(0, n, step)]
    dist = np.concatenate(parts)
    jk = np.concatenate(jack)

    m = len(estimate)
    if dist.shape[1] != m or jk.shape[1] != m:
        raise ValueError(f"the statistic returned {m} figures for the totals but {dist.shape[1]} for resamples")
    out = np.full((4, m), np.nan)
    for i in range(m):
        out[:, i] = bca_bounds(estimate[i], dist[:, i], jk[:, i], confidence)
    return BootstrapResult(
        estimate=estimate,
        low=out[0],
        high=out[1],
        confidence=float(confidence),
        n_resamples=int(n_resamples),
        seed=int(seed),
        z0=out[2],
        acceleration=out[3],
        distribution=dist,
    )
