"""BCa bootstrap intervals over images (segdata.bootstrap): against scipy.stats.bootstrap
(method="BCa") on the same resamples and on its own, against a hand computation of the bias
correction and the acceleration, on biased and degenerate statistics, for any batching."""

from __future__ import annotations

import math
import warnings
from fractions import Fraction
from types import SimpleNamespace

import numpy as np
import pytest
from scipy import sparse, stats
from scipy.special import ndtr, ndtri

from segdata.bootstrap import BootstrapResult, bca_bounds, bca_intervals

NUM = np.array([3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8, 9, 7, 9, 3, 2, 3, 8, 4])
DEN = np.array([5, 4, 4, 6, 9, 9, 8, 7, 6, 9, 5, 9, 9, 8, 9, 4, 7, 3, 9, 9])


def ratio(s):
    return (s["num"] / s["den"])[:, None]


def scipy_ratio(num, den, axis=-1):
    return num.sum(axis=axis) / den.sum(axis=axis)


def test_ratio_of_sums_equals_scipy_bca_on_the_same_resamples():
    """scipy computes z0 from our bootstrap distribution and the acceleration from its own
    jackknife of the raw data: the bounds agree to rounding."""
    r = bca_intervals({"num": NUM, "den": DEN}, ratio, n_resamples=500, seed=1)
    assert r.method == "bca" and (r.n_resamples, r.seed, r.confidence) == (500, 1, 0.95)
    assert r.estimate[0] == NUM.sum() / DEN.sum()
    ref = stats.bootstrap(
        (NUM, DEN),
        scipy_ratio,
        paired=True,
        n_resamples=0,
        method="BCa",
        bootstrap_result=SimpleNamespace(bootstrap_distribution=r.distribution[:, 0]),
    )
    assert [r.low[0], r.high[0]] == pytest.approx(
        [ref.confidence_interval.low, ref.confidence_interval.high], abs=1e-12
    )


def test_ratio_of_sums_matches_scipy_bca_with_its_own_draws():
    """Independent random draws, 20,000 resamples each: the bounds agree within the Monte Carlo
    error (a few thousandths of the interval's width here; allowed: 5%)."""
    r = bca_intervals({"num": NUM, "den": DEN}, ratio, n_resamples=20_000, seed=2)
    ref = stats.bootstrap(
        (NUM, DEN), scipy_ratio, paired=True, n_resamples=20_000, method="BCa", rng=np.random.default_rng(3)
    )
    low, high = ref.confidence_interval
    width = high - low
    assert abs(r.low[0] - low) < 0.05 * width and abs(r.high[0] - high) < 0.05 * width


def test_z0_and_acceleration_equal_a_hand_computation():
    """Four images, a ratio of sums: the resamples redrawn by hand (one rng.integers call per
    resample), z0 from the share of them below the estimate (ties half), the acceleration from
    the four leave-one-out ratios written out as fractions."""
    num, den = np.array([1, 2, 3, 6]), np.array([2, 2, 4, 8])
    r = bca_intervals({"num": num, "den": den}, ratio, n_resamples=200, seed=7)
    rng = np.random.default_rng(7)
    by_hand = []
    for _ in range(200):
        draw = rng.integers(0, 4, size=4)
        by_hand.append(num[draw].sum() / den[draw].sum())
    assert r.distribution[:, 0].tolist() == by_hand
    assert r.bias[0] == pytest.approx(np.mean(by_hand) - 0.75, abs=1e-15)
    est = 12 / 16
    below, ties = sum(v < est for v in by_hand), sum(v == est for v in by_hand)
    assert r.z0[0] == pytest.approx(ndtri((below + 0.5 * ties) / 200), abs=1e-14)
    jack = [Fraction(11, 14), Fraction(10, 14), Fraction(9, 12), Fraction(6, 8)]
    mean = sum(jack) / 4
    d = [mean - j for j in jack]
    a = float(sum(x**3 for x in d)) / (6 * float(sum(x**2 for x in d)) ** 1.5)
    assert r.acceleration[0] == pytest.approx(a, rel=1e-12)
    z0, alphas = r.z0[0], []
    for z in (ndtri(0.025), ndtri(0.975)):
        alphas.append(ndtr(z0 + (z0 + z) / (1 - a * (z0 + z))))
    assert [r.low[0], r.high[0]] == pytest.approx(list(np.quantile(by_hand, alphas)), abs=1e-14)


def miou_with_rare_classes(rare=6, per=1, n=30):
    """Two classes predicted well everywhere; ``rare`` more whose true positives sit in ``per``
    images each while their false positives are spread over all: per image (tp, gt, pred)."""
    k = 2 + rare
    tp, gt, pred = (np.zeros((n, k), np.int64) for _ in range(3))
    rng = np.random.default_rng(0)
    gt[:, :2] = rng.integers(800, 1200, size=(n, 2))
    tp[:, :2] = gt[:, :2] - rng.integers(50, 150, size=(n, 2))
    pred[:, :2] = tp[:, :2] + rng.integers(50, 150, size=(n, 2))
    for c in range(rare):
        for i in range(per):
            image = (c * per + i) % n
            gt[image, 2 + c], tp[image, 2 + c], pred[image, 2 + c] = 400, 300, 300
    pred[:, 2:] += 20  # false positives of every rare class in every image
    return {"tp": tp, "gt": gt, "pred": pred}


def miou_statistic(s):
    union = s["gt"] + s["pred"] - s["tp"]
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union > 0, s["tp"] / np.where(union > 0, union, 1), np.nan)
    return np.nanmean(iou, axis=-1)[:, None]


def test_a_biased_miou_moves_the_bca_interval_towards_the_estimate():
    """Resamples that leave out a rare class's one image keep its false positives and score it
    0: most resamples sit below the estimate (83% here). The percentile interval is pulled down
    with them; BCa's bias correction moves both bounds up, and the interval holds the estimate
    (so does the percentile one: see the next test)."""
    sums = miou_with_rare_classes(rare=6, per=1)
    r = bca_intervals(sums, miou_statistic, n_resamples=2000, seed=0)
    tp, gt, pred = (sums[k].sum(axis=0) for k in ("tp", "gt", "pred"))
    assert r.estimate[0] == pytest.approx(np.mean(tp / (gt + pred - tp)), abs=1e-15)
    dist = r.distribution[:, 0]
    assert 0.7 < np.mean(dist < r.estimate[0]) < 0.95
    pct_low, pct_high = np.percentile(dist, [2.5, 97.5])
    assert r.z0[0] > 0.5
    assert r.low[0] > pct_low + 0.05 and r.high[0] > pct_high + 0.03
    assert r.low[0] <= r.estimate[0] <= r.high[0]


def test_a_miou_biased_beyond_97_5_percent_of_its_resamples_is_outside_both_intervals():
    """Twelve rare classes in two images each: 98.6% of the resamples below the estimate. The
    percentile interval lies below it; BCa's lies above it (the bias-corrected side): the
    bootstrap says the estimate itself is biased by more than its spread."""
    r = bca_intervals(miou_with_rare_classes(rare=12, per=2), miou_statistic, n_resamples=2000, seed=0)
    dist, est = r.distribution[:, 0], r.estimate[0]
    assert np.mean(dist < est) > 0.975
    assert np.percentile(dist, 97.5) < est < r.low[0] < r.high[0]


@pytest.mark.parametrize("seed", range(6))
def test_bca_holds_the_estimate_exactly_when_the_percentile_interval_does(seed):
    """With |a| small the BCa bounds sit on either side of the estimate iff |z0| <= 1.96, i.e.
    iff the share of resamples below it lies in [2.5%, 97.5%]: the condition under which the
    percentile interval holds it. BCa moves the interval; it cannot make a bootstrap
    distribution that lies wholly below the estimate contain it (docs/consistency.md)."""
    sums = miou_with_rare_classes(rare=2 + 3 * seed, per=1 + seed % 2)
    r = bca_intervals(sums, miou_statistic, n_resamples=400, seed=seed)
    dist, est = r.distribution[:, 0], r.estimate[0]
    pct = np.percentile(dist, [2.5, 97.5])
    if math.isnan(r.low[0]):
        assert not pct[0] <= est <= pct[1]
    else:
        assert (r.low[0] <= est <= r.high[0]) == (pct[0] <= est <= pct[1])


def test_an_estimate_beyond_every_resample_has_no_interval_as_in_scipy():
    """The share of distinct images: 1 for the sample, below 1 in every resample that repeats an
    image (all 200 here): z0 is infinite and BCa undefined; scipy returns NaN too."""
    n = 10

    def distinct(s):
        return (s["onehot"] > 0).mean(axis=-1)[:, None]

    r = bca_intervals({"onehot": np.eye(n, dtype=np.int64)}, distinct, 200, seed=0)
    assert r.estimate[0] == 1 and (r.distribution[:, 0] < 1).all()
    assert np.isnan([r.low[0], r.high[0]]).all() and r.z0[0] == np.inf
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = stats.bootstrap(
            (np.arange(n),),
            lambda x: len(np.unique(x)) / n,
            vectorized=False,
            n_resamples=0,
            method="BCa",
            bootstrap_result=SimpleNamespace(bootstrap_distribution=r.distribution[:, 0]),
        )
    assert np.isnan(ref.confidence_interval.low) and np.isnan(ref.confidence_interval.high)


def test_degenerate_figures():
    """NaN estimate: NaN interval; NaN resamples left out (a ratio defined only in the
    resamples holding image 0 or 1, always 3 there: [3, 3]); a constant: [c, c]."""
    den = np.array([2, 1, 0, 0, 0, 0, 0, 0])
    sums = {"num": 3 * den, "den": den, "zero": np.zeros(8)}

    def stat(s):
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.stack([s["num"] / s["den"], s["zero"] / s["zero"], s["zero"] + 2.5], axis=1)

    r = bca_intervals(sums, stat, n_resamples=300, seed=4)
    assert np.isnan(r.distribution[:, 0]).any()  # some resamples hold neither image 0 nor 1
    assert (r.low[0], r.high[0]) == (3.0, 3.0)
    assert np.isnan([r.estimate[1], r.low[1], r.high[1]]).all()
    assert (r.low[2], r.high[2]) == (2.5, 2.5)
    assert r.interval(1) == [None, None] and r.intervals(["a", "b", "c"])["c"] == [2.5, 2.5]


def test_bca_bounds_of_one_figure():
    assert np.isnan(bca_bounds(float("nan"), np.ones(3), np.ones(3), 0.95)[:2]).all()
    assert np.isnan(bca_bounds(1.0, np.array([np.nan, np.nan]), np.ones(3), 0.95)[:2]).all()
    assert bca_bounds(0.5, np.array([0.5, 0.5]), np.ones(3), 0.95)[:2] == (0.5, 0.5)
    low, high, z0, a = bca_bounds(0.5, np.linspace(0, 1, 101), np.array([0.4, 0.6]), 0.9)
    assert z0 == pytest.approx(0.0) and a == 0.0  # symmetric: no bias, no skew
    assert (low, high) == pytest.approx((0.05, 0.95), abs=1e-12)  # the plain 5% and 95% quantiles


def test_the_same_seed_gives_the_same_result_and_another_seed_another():
    a = bca_intervals({"num": NUM, "den": DEN}, ratio, 300, seed=11)
    b = bca_intervals({"num": NUM, "den": DEN}, ratio, 300, seed=11)
    c = bca_intervals({"num": NUM, "den": DEN}, ratio, 300, seed=12)
    assert np.array_equal(a.distribution, b.distribution) and (a.low, a.high) == (b.low, b.high)
    assert not np.array_equal(a.distribution, c.distribution)


@pytest.mark.parametrize("as_sparse", [False, True])
def test_batching_threads_and_sparse_input_do_not_change_the_result(as_sparse):
    """Resamples in batches of 1, 7 or all at once, on two threads, per-image sums dense or CSR
    (a mostly-zero (n, 500) array): the same resamples and identical sums (the ratio of sums is
    bit-identical); a mean over classes agrees to the rounding of numpy's reductions over
    batches of another shape."""
    rng = np.random.default_rng(5)
    n, k = 40, 500
    tp = np.zeros((n, k), np.int64)
    gt = np.zeros((n, k), np.int64)
    for i in range(n):
        classes = rng.choice(k, size=6, replace=False)
        gt[i, classes] = rng.integers(10, 100, size=6)
        tp[i, classes] = gt[i, classes] - rng.integers(0, 10, size=6)
    sums = {"tp": sparse.csr_matrix(tp) if as_sparse else tp, "gt": gt}

    def stat(s):
        with np.errstate(invalid="ignore", divide="ignore"):
            acc = np.where(s["gt"] > 0, s["tp"] / np.where(s["gt"] > 0, s["gt"], 1), np.nan)
        return np.stack([np.nanmean(acc, axis=1), s["tp"].sum(axis=1) / s["gt"].sum(axis=1)], axis=1)

    results = [
        bca_intervals(sums, stat, 100, seed=3, batch=1),
        bca_intervals(sums, stat, 100, seed=3, batch=7),
        bca_intervals(sums, stat, 100, seed=3, batch=7, threads=2),
        bca_intervals(sums, stat, 100, seed=3),
        bca_intervals({"tp": tp, "gt": gt}, stat, 100, seed=3),
    ]
    first = results[0]
    for r in results[1:]:
        assert np.array_equal(r.distribution[:, 1], first.distribution[:, 1])
        assert (r.low[1], r.high[1], r.acceleration[1]) == (first.low[1], first.high[1], first.acceleration[1])
        np.testing.assert_allclose(r.distribution[:, 0], first.distribution[:, 0], rtol=0, atol=1e-13)
        np.testing.assert_allclose([r.low[0], r.high[0]], [first.low[0], first.high[0]], rtol=0, atol=1e-13)
    # the overall accuracy is a ratio of sums: its resamples recomputed from the draws
    rng = np.random.default_rng(3)
    for b in range(5):
        w = np.bincount(rng.integers(0, n, size=n), minlength=n)
        assert results[0].distribution[b, 1] == (w @ tp).sum() / (w @ gt).sum()


def test_per_image_arrays_of_any_trailing_shape():
    """(n, 2, 3) sums reach the statistic as (B, 2, 3); figures of a (n,) array too."""
    x = np.arange(24).reshape(4, 2, 3)
    seen = []

    def stat(s):
        seen.append(s["x"].shape[1:])
        return np.stack([s["x"][:, 1, 2] / s["y"], s["x"].sum(axis=(1, 2)) / s["y"]], axis=1)

    r = bca_intervals({"x": x, "y": np.array([1, 2, 3, 4])}, stat, 20)
    assert set(seen) == {(2, 3)}
    assert r.estimate.tolist() == [(5 + 11 + 17 + 23) / 10, x.sum() / 10]


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"per_image": {}}, "empty"),
        ({"per_image": {"a": np.ones(3), "b": np.ones(4)}}, "number of images"),
        ({"per_image": {"a": np.ones(0)}}, "no image"),
        ({"confidence": 1.0}, "confidence"),
        ({"n_resamples": 0}, "n_resamples"),
        ({"batch": 0}, "batch"),
        ({"statistic": lambda s: np.ones(3)}, r"\(B, M\)"),
    ],
)
def test_bad_arguments(kwargs, message):
    args = {"per_image": {"num": NUM, "den": DEN}, "statistic": ratio, **kwargs}
    with pytest.raises(ValueError, match=message):
        bca_intervals(**args)


def test_result_record_checks_shapes():
    with pytest.raises(ValueError, match="low"):
        BootstrapResult(np.zeros(2), np.zeros(3), np.zeros(2), 0.95, 10, 0)
