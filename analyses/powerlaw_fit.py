"""Fitting a discrete power law the way Clauset, Shalizi and Newman (2009) prescribe.

For counts ``x`` (pixels or instances per class), the model is ``P(x) ∝ x^-alpha`` for
``x >= xmin``. ``xmin`` is chosen to minimise the Kolmogorov-Smirnov distance between the tail and
the fitted law, ``alpha`` is the maximum-likelihood estimate for that tail (exact discrete
likelihood, Hurwitz zeta normalisation), and goodness of fit is the semi-parametric bootstrap
p-value of CSN section 4.1: the fraction of synthetic data sets, drawn from the fitted model above
``xmin`` and from the data below it, whose own best fit is further from them than the data's
(p > 0.1: the power law is plausible).

A distribution ``P(x) ∝ x^-alpha`` of class counts is the same statement as a rank-frequency
curve ``count(rank) ∝ rank^-s`` with ``s = 1 / (alpha - 1)`` (Zipf's law has ``s = 1``,
``alpha = 2``); both are reported.

Self-contained on numpy/scipy: the reference implementation (the ``powerlaw`` package) costs more
than a second just to import, more than the whole long-tail analysis of a 25,000-image dataset.
Tests check this module against it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import special

_MAX_CANDIDATES = 60  # xmin values tried (quantiles of the distinct values)
_MIN_TAIL = 10  # fewest points a tail may have


@dataclass(frozen=True)
class PowerLawFit:
    """Result of :func:`fit_power_law`.

    Attributes
    ----------
    alpha : float
        Exponent of ``P(x) ∝ x^-alpha`` above ``xmin``.
    sigma : float
        Its standard error, ``(alpha - 1) / sqrt(n_tail)``.
    xmin : int
        Smallest value following the power law.
    n : int
        Number of values (classes) fitted.
    n_tail : int
        Values ``>= xmin``.
    ks : float
        Kolmogorov-Smirnov distance between the tail and the fitted law.
    p_value : float or None
        Bootstrap goodness-of-fit p-value (None when ``bootstrap == 0``).
    bootstrap : int
        Number of synthetic data sets behind ``p_value``.
    rank_exponent : float
        ``s = 1 / (alpha - 1)`` of the equivalent rank-frequency law ``count ∝ rank^-s``.
    """

    alpha: float
    sigma: float
    xmin: int
    n: int
    n_tail: int
    ks: float
    p_value: float | None
    bootstrap: int
    rank_exponent: float

    def as_dict(self) -> dict:
        return asdict(self)


def _log_zeta(a: float, q):
    """log of the Hurwitz zeta function zeta(a, q), a > 1, q >= 1, without underflow.

    For q >= 10, Euler-Maclaurin: zeta(a, q) = q^(1-a) [1/(a-1) + 1/(2q) + a/(12 q^2)
    - a(a+1)(a+2)/(720 q^4) + ...], relative error below 1e-9 there; below, scipy's zeta.
    """
    q = np.asarray(q, dtype=np.float64)
    small = q < 10
    out = np.empty_like(q)
    if small.any():
        out[small] = np.log(special.zeta(a, q[small]))
    if (~small).any():
        qb = q[~small]
        series = 1 / (a - 1) + 1 / (2 * qb) + a / (12 * qb**2) - a * (a + 1) * (a + 2) / (720 * qb**4)
        out[~small] = (1 - a) * np.log(qb) + np.log(series)
    return out if out.ndim else float(out)


def _alpha_exact(tail: np.ndarray, xmin: int, start: float) -> float:
    """Exact discrete MLE: maximise -n log zeta(alpha, xmin) - alpha sum(log x)."""
    n = len(tail)
    s = np.log(tail).sum()

    def nll(a):
        return n * _log_zeta(a, xmin) + a * s

    return _golden_min(nll, 1.0 + 1e-6, min(max(start * 2.0, 6.0), 50.0))


def _golden_min(f, lo: float, hi: float, tol: float = 1e-7) -> float:
    """Minimum of a unimodal function on [lo, hi] by golden-section search (the likelihood of a
    power law is unimodal in alpha); ~50 evaluations, no scipy.optimize import (0.3 s)."""
    g = (np.sqrt(5.0) - 1.0) / 2.0
    a, b = lo, hi
    c, d = b - g * (b - a), a + g * (b - a)
    fc, fd = f(c), f(d)
    while b - a > tol:
        if fc < fd:
            b, d, fd = d, c, fc
            c = b - g * (b - a)
            fc = f(c)
        else:
            a, c, fc = c, d, fd
            d = a + g * (b - a)
            fd = f(d)
    return float((a + b) / 2.0)


def _ks(tail_sorted: np.ndarray, alpha: float, xmin: int) -> float:
    """KS distance between the empirical CDF of a sorted tail and the discrete power law."""
    values, counts = np.unique(tail_sorted, return_counts=True)
    emp = np.cumsum(counts) / len(tail_sorted)
    log_norm = _log_zeta(alpha, xmin)
    model = 1.0 - np.exp(_log_zeta(alpha, values + 1.0) - log_norm)
    emp_before = np.concatenate(([0.0], emp[:-1]))
    model_before = 1.0 - np.exp(_log_zeta(alpha, values.astype(np.float64)) - log_norm)
    return float(max(np.abs(emp - model).max(), np.abs(emp_before - model_before).max()))


def _scan(x_sorted: np.ndarray) -> tuple[int, float, float]:
    """Best (xmin, alpha, ks) over candidate xmins, using the fast continuous approximations.

    The distinct values, their counts and suffix sums of logs are computed once; each candidate
    then costs one vectorised pass over the distinct values above it.
    """
    values, counts = np.unique(x_sorted, return_counts=True)
    logs = np.log(values) * counts
    suffix_n = np.cumsum(counts[::-1])[::-1]  # points >= values[k]
    suffix_log = np.cumsum(logs[::-1])[::-1]
    # candidates: keep >= _MIN_TAIL points above; every distinct value when few, else quantiles
    eligible = np.flatnonzero((suffix_n >= min(_MIN_TAIL, len(x_sorted))) & (values >= 1))
    if len(eligible) == 0:
        eligible = np.array([0])
    if len(eligible) > _MAX_CANDIDATES:
        eligible = eligible[np.unique(np.linspace(0, len(eligible) - 1, _MAX_CANDIDATES).round().astype(int))]
    # all candidates at once: rows are candidates k, columns distinct values j (j >= k counts)
    ks = eligible
    xmin = values[ks]
    n = suffix_n[ks]
    with np.errstate(divide="ignore", invalid="ignore"):
        alpha = 1.0 + n / (suffix_log[ks] - n * np.log(xmin - 0.5))  # CSN eq. (3.7)
        cum = np.concatenate(([0], np.cumsum(counts)))
        # empirical CDF at each distinct value (inclusive and exclusive of ties) against the
        # continuous approximation P(X <= v) = 1 - ((v + 1/2) / (xmin - 1/2))^(1 - alpha)
        ends = (cum[None, 1:] - cum[ks, None]) / n[:, None]
        before = (cum[None, :-1] - cum[ks, None]) / n[:, None]
        lx = np.log(xmin - 0.5)[:, None]
        e = (1.0 - alpha)[:, None]
        model = 1.0 - np.exp(e * (np.log(values + 0.5)[None, :] - lx))
        model_before = 1.0 - np.exp(e * (np.log(values - 0.5)[None, :] - lx))
        dist = np.maximum(np.abs(ends - model), np.abs(before - model_before))
    dist[np.arange(len(values))[None, :] < ks[:, None]] = 0.0  # values below xmin are not in the tail
    d = dist.max(axis=1)
    d[~np.isfinite(alpha) | (alpha <= 1)] = np.inf
    best = int(np.argmin(d))
    return int(xmin[best]), float(alpha[best]), float(d[best])


def _fit(x_sorted: np.ndarray) -> tuple[int, float, float, int]:
    xmin, alpha0, _ = _scan(x_sorted)
    tail = x_sorted[np.searchsorted(x_sorted, xmin) :]
    alpha = _alpha_exact(tail, xmin, alpha0 if np.isfinite(alpha0) else 2.0)
    return xmin, alpha, _ks(tail, alpha, xmin), len(tail)


def _sample_power_law(rng: np.random.Generator, n: int, alpha: float, xmin: int) -> np.ndarray:
    """Draw n values from the discrete power law above xmin (CSN appendix D: continuous draw
    rounded, which is accurate for the xmin values class counts have, plus exact inversion of
    the discrete CDF for small xmin)."""
    u = rng.random(n)
    x = np.floor((xmin - 0.5) * (1.0 - u) ** (-1.0 / (alpha - 1.0)) + 0.5)
    return np.maximum(x, xmin)


def fit_power_law(values, *, bootstrap: int = 100, seed: int = 0) -> PowerLawFit:
    """Fit a discrete power law to positive counts (CSN 2009).

    Parameters
    ----------
    values : array-like of int
        One count per class (pixels, instances or images); zeros are dropped.
    bootstrap : int
        Synthetic data sets for the goodness-of-fit p-value (0: skip it). The p-value's
        precision is about ``1 / (2 sqrt(bootstrap))``.
    seed : int
        Seed of the bootstrap.

    Returns
    -------
    PowerLawFit

    Examples
    --------
    >>> fit = fit_power_law(np.round(1e6 / np.arange(1, 3001)).astype(int), bootstrap=0)
    >>> round(fit.alpha, 1), round(fit.rank_exponent, 1)
    (2.0, 1.0)
    """
    x = np.asarray(values, dtype=np.float64)
    x = np.sort(x[x > 0])
    if len(x) < _MIN_TAIL:
        raise ValueError(f"a power-law fit needs at least {_MIN_TAIL} positive values, got {len(x)}")
    xmin, alpha, ks, n_tail = _fit(x)
    p_value = None
    if bootstrap > 0:
        rng = np.random.default_rng(seed)
        below = x[x < xmin]
        n = len(x)
        p_tail = n_tail / n
        worse = 0
        for _ in range(bootstrap):
            k = rng.binomial(n, p_tail)
            synth = np.concatenate(
                [_sample_power_law(rng, k, alpha, xmin), rng.choice(below, n - k) if len(below) and n > k else []]
            )
            synth = np.sort(synth)
            if len(synth) < _MIN_TAIL:
                continue
            _, _, ks_synth, _ = _fit(synth)
            worse += ks_synth >= ks
        p_value = worse / bootstrap
    return PowerLawFit(
        alpha=float(alpha),
        sigma=float((alpha - 1.0) / np.sqrt(n_tail)),
        xmin=int(xmin),
        n=int(len(x)),
        n_tail=int(n_tail),
        ks=float(ks),
        p_value=p_value,
        bootstrap=int(bootstrap),
        rank_exponent=float(1.0 / (alpha - 1.0)) if alpha > 1 else float("inf"),
    )


def gini(values) -> float:
    """Gini coefficient of non-negative values (0: all equal; -> 1: one holds everything).

    >>> gini([1, 1, 1, 1]), round(gini([0, 0, 0, 1]), 2)
    (0.0, 0.75)
    """
    v = np.sort(np.asarray(values, dtype=np.float64))
    n = len(v)
    if n == 0 or v.sum() == 0:
        return 0.0
    cum = np.cumsum(v)
    return float((n + 1 - 2 * (cum / cum[-1]).sum()) / n)
