"""Long-tail analysis: counts against independent computations, the power-law fit against the
reference implementation and known exponents, bucket edges exactly."""

from __future__ import annotations

import json
from collections import defaultdict

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from PIL import Image

import segdata
from segdata.analyses import longtail as lt
from segdata.analyses.powerlaw_fit import fit_power_law, gini
from segdata.cli import main
from segdata.convert import convert
from segdata.converters import ade20k
from tests.conftest import require
from tests.fixtures.ade20k import small_2021_dataset


def independent_counts(seg_pngs):
    """Per ADE class code: pixels and images, decoded with Pillow from the source PNGs."""
    pixels, images = defaultdict(int), defaultdict(int)
    for png in seg_pngs:
        rgb = np.asarray(Image.open(png).convert("RGB")).astype(np.int64)
        codes = rgb[..., 0] // 10 * 256 + rgb[..., 1]
        values, counts = np.unique(codes[codes > 0], return_counts=True)
        for v, c in zip(values.tolist(), counts.tolist()):
            pixels[v] += c
            images[v] += 1
    return pixels, images


def check_counts(ds, seg_pngs):
    pixels, images = independent_counts(seg_pngs)
    freq = lt.class_frequencies(ds)
    source = dict(zip(ds.classes.class_id, ds.classes.source_id))
    got = {source[r.class_id]: (r.pixels, r.images) for r in freq.itertuples() if r.pixels}
    assert got == {code: (pixels[code], images[code]) for code in pixels}
    total = sum(pixels.values())
    assert np.isclose(freq.pixel_share.sum(), 1.0)
    assert freq.pixels.max() / total == pytest.approx(freq.pixel_share.max())
    acc = lt.pixel_accounting(ds)
    assert acc["labelled"] == total and acc["ignore"] == 0
    assert acc["labelled"] + acc["unlabeled"] == acc["total"] == int((ds.images.width * ds.images.height).sum())


def test_counts_on_real_samples(samples, tmp_path):
    root = samples / "ade20k_full" / "ADE20K_2021_17_01"
    pngs = sorted(require(root / "images/ADE/training/urban/street").glob("*_seg.png"))
    assert len(pngs) == 3
    convert(ade20k, root, tmp_path / "u", workers=1)
    check_counts(segdata.open(tmp_path / "u"), pngs)


def test_counts_on_fixture(tmp_path):
    src = small_2021_dataset(tmp_path / "src")
    convert(ade20k, src, tmp_path / "u", workers=1)
    ds = segdata.open(tmp_path / "u")
    check_counts(ds, sorted(src.rglob("*_seg.png")))
    freq = lt.class_frequencies(ds).set_index("class_id")
    assert freq.loc[401, "instances"] == 2 and freq.loc[2855, "images"] == 2
    assert freq.loc[2855, "train_images"] == 1  # the tree of the val image does not count for LVIS
    assert list(freq.sort_values("rank").index[:2]) == [2855, 312]  # 28 and 23 pixels


def test_split_restricts_counts(tmp_path):
    src = small_2021_dataset(tmp_path / "src")
    convert(ade20k, src, tmp_path / "u", workers=1)
    ds = segdata.open(tmp_path / "u")
    val = lt.class_frequencies(ds, split="val")
    assert val.loc[val.pixels > 0, "class_id"].tolist() == [2855] and val.pixels.max() == 16
    with pytest.raises(ValueError, match="no split 'test'"):
        lt.class_frequencies(ds, split="test")


@pytest.mark.parametrize(
    "train_images,expected",
    [(0, "absent"), (1, "rare"), (10, "rare"), (11, "common"), (100, "common"), (101, "frequent"), (5000, "frequent")],
)
def test_lvis_bucket_edges(train_images, expected):
    freq = pd.DataFrame({"class_id": [1], "pixels": [7], "pixel_share": [1.0], "train_images": [train_images]})
    assert lt.assign_buckets(freq, lt.LVIS).iloc[0] == expected


def test_custom_and_tercile_buckets():
    freq = pd.DataFrame(
        {
            "class_id": range(1, 8),
            "train_images": [0, 1, 5, 6, 50, 51, 99],
            "pixels": [0, 1, 2, 3, 4, 5, 6],
            "pixel_share": [0, 1, 2, 3, 4, 5, 6],
        }
    )
    rule = lt.parse_bucket_rule("images:5,50")
    assert lt.assign_buckets(freq, rule).tolist() == ["absent", "<=5", "<=5", "6-50", "6-50", ">50", ">50"]
    terciles = lt.assign_buckets(freq, lt.TERCILES).tolist()
    assert terciles == ["absent", "low", "low", "mid", "mid", "high", "high"]
    with pytest.raises(ValueError, match="edges must increase"):
        lt.parse_bucket_rule("images:50,5")


def test_coverage_and_classes_for_coverage():
    freq = pd.DataFrame({"class_id": [1, 2, 3, 4], "pixels": [50, 30, 15, 5], "rank": [1, 2, 3, 4]})
    cov = lt.coverage(freq)
    assert cov.pixel_share.tolist() == pytest.approx([0.5, 0.8, 0.95, 1.0])
    assert lt.classes_for_coverage(freq, 0.9) == 3 and lt.classes_for_coverage(freq, 0.5) == 1


@pytest.mark.parametrize("s", [0.7, 1.0, 1.5])
def test_power_law_fit_recovers_zipf_exponent_of_samples(s):
    """Counts drawn from a discrete power law with alpha = 1 + 1/s (rank exponent s): the fit
    recovers s within 0.1 (stated tolerance; 3,000 classes)."""
    rng = np.random.default_rng(7)
    alpha = 1 + 1 / s
    x = np.floor(0.5 * (1 - rng.random(3000)) ** (-1 / (alpha - 1)) + 0.5)
    fit = fit_power_law(x, bootstrap=50)
    assert abs(fit.rank_exponent - s) < 0.1
    assert fit.p_value > 0.1  # plausible: it is a power law


def test_power_law_fit_rejects_a_normal():
    """Counts around one typical value are no power law: the bootstrap p-value says so.
    (An exponential's far tail can pass, as CSN note: the test is only as strong as the tail.)"""
    rng = np.random.default_rng(3)
    fit = fit_power_law(np.abs(rng.normal(50000, 5000, 3000)).round(), bootstrap=100)
    assert fit.p_value < 0.1


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # inside the reference package
def test_power_law_fit_matches_the_powerlaw_package():
    powerlaw = pytest.importorskip("powerlaw", reason="cross-check against the reference implementation")
    rng = np.random.default_rng(11)
    x = np.floor(9.5 * (1 - rng.random(2000)) ** (-1 / 1.5) + 0.5)
    mine = fit_power_law(x, bootstrap=0)
    ref = powerlaw.Fit(x, discrete=True, verbose=False)
    assert mine.xmin == ref.xmin
    assert mine.alpha == pytest.approx(ref.alpha, abs=0.01)
    assert mine.ks == pytest.approx(ref.D, abs=0.002)


def test_zipf_exponent_recovered_from_a_generated_dataset(tmp_path):
    """The project's generator draws objects per class with rank exponent 1.0; the long-tail
    analysis of the converted dataset recovers it within 0.15 (stated tolerance)."""
    from segdata.synthetic import generate_ade20k_2021

    root = generate_ade20k_2021(
        tmp_path / "src", 400, image_size=(24, 32), n_classes=300, zipf_exponent=1.0, seed=1, parts=False
    )
    convert(ade20k, root, tmp_path / "u", workers=2)
    report = lt.longtail_report(segdata.open(tmp_path / "u"), bootstrap=0)
    assert abs(report["powerlaw"]["instances"]["rank_exponent"] - 1.0) < 0.15


def test_gini():
    assert gini([5, 5, 5]) == 0.0
    assert gini([0, 0, 0, 0, 10]) == pytest.approx(0.8)


def test_cli_json_has_the_documented_keys(tmp_path):
    src = small_2021_dataset(tmp_path / "src")
    convert(ade20k, src, tmp_path / "u", workers=1)
    result = CliRunner().invoke(
        main,
        [
            "analyze",
            "longtail",
            str(tmp_path / "u"),
            "--json",
            "--bootstrap",
            "0",
            "--plots",
            str(tmp_path / "plots"),
            "--buckets-out",
            str(tmp_path / "b.csv"),
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    for key in ("classes", "coverage", "powerlaw", "gini"):
        assert key in report
    first = report["classes"][0]
    assert set(first) >= {"class_id", "name", "pixels", "pixel_share", "images", "instances", "rank", "bucket"}
    assert first["name"] == "tree" and first["pixels"] == 28
    assert report["coverage"][0] == {
        "k": 1,
        "pixel_share": pytest.approx(28 / sum(c["pixels"] for c in report["classes"])),
    }
    for name in ("rank_frequency", "coverage", "buckets"):
        assert (tmp_path / "plots" / f"{name}.png").stat().st_size > 0 and (
            tmp_path / "plots" / f"{name}.svg"
        ).is_file()
    buckets = pd.read_csv(tmp_path / "b.csv")
    assert list(buckets.columns) == ["class_id", "name", "bucket"] and set(buckets.bucket) <= {"rare", "absent"}


@pytest.mark.parametrize(
    "option,value,listed",
    [
        ("--split", "tset", "no split 'tset'; splits: train, val"),
        ("--layer", "nosuch", "no layer 'nosuch'; layers: objects"),
    ],
)
def test_unknown_split_or_layer_is_a_usage_error_listing_what_exists(tmp_path, option, value, listed):
    """Not an all-zero report with exit code 0: the library raises, the CLI exits 2 naming what
    the dataset has."""
    src = small_2021_dataset(tmp_path / "src")
    convert(ade20k, src, tmp_path / "u", workers=1)
    ds = segdata.open(tmp_path / "u")
    with pytest.raises(segdata.SelectionError, match=listed):
        lt.class_frequencies(ds, **{option.strip("-"): value})
    for command in (["analyze", "longtail"], ["vocab"]):
        extra = ["-o", str(tmp_path / "v.json"), "--top", "3"] if command == ["vocab"] else ["--json"]
        result = CliRunner().invoke(main, [*command, str(tmp_path / "u"), option, value, *extra])
        assert result.exit_code == 2 and listed in " ".join(result.output.split()), result.output
        assert not (tmp_path / "v.json").exists()


def test_plots_leave_the_matplotlib_backend_alone(tmp_path):
    """A notebook's backend is the user's: drawing the plots neither imports pyplot nor calls
    matplotlib.use (checked in a fresh interpreter whose backend is set to a non-Agg one)."""
    import subprocess
    import sys

    src = small_2021_dataset(tmp_path / "src")
    convert(ade20k, src, tmp_path / "u", workers=1)
    code = f"""
import sys, matplotlib
matplotlib.use("svg")
import segdata
from segdata.analyses import longtail as lt, small_objects as so
ds = segdata.open({str(tmp_path / "u")!r})
r = lt.analyze(ds, bootstrap=0)
lt.plot_longtail(r.frequencies, r.buckets, {str(tmp_path / "p")!r})
s = so.analyze(ds, workers=1)
so.plot_sizes(s.objects, s.per_class, {str(tmp_path / "p")!r})
print(matplotlib.get_backend(), "matplotlib.pyplot" in sys.modules)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["svg", "False"]
    assert len(list((tmp_path / "p").glob("*.png"))) == 5
