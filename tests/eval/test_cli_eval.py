"""`segdata eval` from the command line: the JSON a script reads, exit codes, --out written whole,
--missing, the process pool and a Dask cluster giving the same figures. Generated Cityscapes data:
the figures are checked against a per-pixel count done here with numpy."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

import segdata
from segdata.cli import main
from segdata.convert import convert
from segdata.converters import cityscapes as cityscapes_converter
from segdata.maskio import encode_png
from segdata.synthetic.cityscapes import generate_cityscapes
from segdata.vocab import Vocabulary


@pytest.fixture(scope="module")
def city(tmp_path_factory):
    root = tmp_path_factory.mktemp("cs")
    generate_cityscapes(root / "src", 8, image_size=(64, 128), seed=4, polygons=False, png="fast")
    convert(cityscapes_converter, root / "src", root / "u", workers=1)
    ds = segdata.open(root / "u")
    lut = Vocabulary.from_train_ids(ds.classes).lookup(ds.classes, dtype=np.int64)
    rng = np.random.default_rng(0)
    pred_dir = root / "pred"
    pred_dir.mkdir()
    truth = {}
    for r in ds.images.itertuples():
        t = lut[ds.semantic(r.image_id)]
        p = t.copy()
        p[p == 255] = rng.integers(0, 19, (p == 255).sum())  # predictions on ignored pixels
        noise = rng.random(p.shape) < 0.2
        p[noise] = rng.integers(0, 19, noise.sum())
        p[:4, :8] = 255  # no prediction
        (pred_dir / f"{r.image_id}.png").write_bytes(encode_png(p.astype(np.uint8)))
        truth[r.image_id] = (r.split, t, p)
    return root, ds, truth


def _expected(truth, split):
    tp = np.zeros(19)
    gt = np.zeros(19)
    pr = np.zeros(19)
    for s, t, p in truth.values():
        if s != split:
            continue
        valid = t != 255
        for c in range(19):
            gt[c] += ((t == c) & valid).sum()
            pr[c] += ((p == c) & valid).sum()
            tp[c] += ((t == c) & (p == c)).sum()
    union = gt + pr - tp
    iou = np.where(union > 0, tp / np.maximum(union, 1), np.nan)
    return iou, tp.sum() / gt.sum()


def test_eval_json_equals_a_per_pixel_count(city):
    root, ds, truth = city
    result = CliRunner().invoke(
        main, ["eval", str(root / "u"), "--pred", str(root / "pred"), "--json", "--bootstrap", "0", "--workers", "1"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    iou, pixel_accuracy = _expected(truth, "val")
    got = np.array([np.nan if c["iou"] is None else c["iou"] for c in report["per_class"]])
    np.testing.assert_allclose(got, iou, rtol=0, atol=1e-12)
    assert report["miou"] == pytest.approx(np.nanmean(iou), abs=1e-12)
    assert report["pixel_accuracy"] == pytest.approx(pixel_accuracy, abs=1e-12)
    for key in (
        "pixel_accuracy",
        "mean_accuracy",
        "miou",
        "fw_iou",
        "per_class",
        "mean_iiou",
        "buckets",
        "size_recall",
        "settings",
    ):
        assert key in report
    assert set(report["per_class"][0]) >= {"class_id", "train_id", "name", "iou", "accuracy", "present", "bucket"}
    assert report["settings"]["images"] == sum(1 for s, _, _ in truth.values() if s == "val")
    assert "ignoreInEval" in report["settings"]["ignore"]
    assert set(report["size_recall"]) == {"small", "medium", "large"}


def test_by_frequency_buckets_and_out_file(city, tmp_path):
    root, ds, truth = city
    out = tmp_path / "eval.json"
    result = CliRunner().invoke(
        main,
        [
            "eval",
            str(root / "u"),
            "--pred",
            str(root / "pred"),
            "--by-frequency",
            "--bootstrap",
            "0",
            "--out",
            str(out),
            "--workers",
            "1",
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    iou, _ = _expected(truth, "val")
    # training images per train id, counted here from the masks of the train split
    train_images = np.zeros(19, dtype=int)
    for s, t, _ in truth.values():
        if s == "train":
            train_images[np.unique(t[t != 255])] += 1
    for b in report["buckets"]:
        members = [c["train_id"] for c in report["per_class"] if c["bucket"] == b["name"]]
        assert b["classes"] == len(members)
        want = np.nanmean(iou[members]) if np.isfinite(iou[members]).any() else None
        assert (b["miou"] is None and want is None) or b["miou"] == pytest.approx(want, abs=1e-12)
        for m in members:
            n = train_images[m]
            expected = "unseen" if n == 0 else "rare" if n <= 10 else "common" if n <= 100 else "frequent"
            assert b["name"] == expected
    assert "by training frequency" in result.output


def test_missing_predictions_error_or_skip(city, tmp_path):
    root, ds, truth = city
    partial = tmp_path / "partial"
    partial.mkdir()
    val = [i for i, (s, _, _) in truth.items() if s == "val"]
    for i in val[1:]:
        (partial / f"{i}.png").write_bytes((root / "pred" / f"{i}.png").read_bytes())
    out = tmp_path / "e.json"
    result = CliRunner().invoke(
        main, ["eval", str(root / "u"), "--pred", str(partial), "--out", str(out), "--bootstrap", "0"]
    )
    assert result.exit_code == 1
    assert f"{val[0]}.png" in result.output and "no prediction" in result.output
    assert "Traceback" not in result.output
    assert not out.exists()
    result = CliRunner().invoke(
        main, ["eval", str(root / "u"), "--pred", str(partial), "--missing", "skip", "--json", "--bootstrap", "0"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["settings"]["skipped"] == [val[0]]
    assert report["settings"]["images"] == len(val) - 1


def test_usage_errors_exit_2(city):
    root, _, _ = city
    runner = CliRunner()
    assert runner.invoke(main, ["eval", str(root / "u")]).exit_code == 2
    r = runner.invoke(main, ["eval", str(root / "u"), "--pred", str(root / "pred"), "--split", "test"])
    assert r.exit_code == 2 and "no split 'test'" in r.output
    r = runner.invoke(main, ["eval", str(root / "u"), "--pred", str(root / "pred"), "--window", "64x64"])
    assert r.exit_code == 2
    r = runner.invoke(main, ["eval", "--help"])
    assert r.exit_code == 0 and "Example" in r.output


def test_a_wrong_prediction_is_one_line_naming_the_file(city, tmp_path):
    root, ds, truth = city
    bad = tmp_path / "bad"
    bad.mkdir()
    val = [i for i, (s, _, _) in truth.items() if s == "val"]
    for i in val:
        (bad / f"{i}.png").write_bytes((root / "pred" / f"{i}.png").read_bytes())
    _, t, p = truth[val[-1]]
    q = p.copy()
    q[0, 0] = 40
    (bad / f"{val[-1]}.png").write_bytes(encode_png(q.astype(np.uint8)))
    r = CliRunner().invoke(main, ["eval", str(root / "u"), "--pred", str(bad), "--bootstrap", "0", "--workers", "1"])
    assert r.exit_code == 1
    assert f"{val[-1]}.png: value 40 is outside the id space" in r.output
    assert len(r.output.strip().splitlines()) <= 2


def test_dask_cluster_gives_the_same_figures(city):
    distributed = pytest.importorskip("distributed")
    root, _, _ = city
    args = ["eval", str(root / "u"), "--pred", str(root / "pred"), "--json", "--bootstrap", "0"]
    local = json.loads(CliRunner().invoke(main, [*args, "--workers", "2"]).output)
    with distributed.LocalCluster(
        n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None
    ) as cluster:
        remote = CliRunner().invoke(main, [*args, "--scheduler", cluster.scheduler_address])
    assert remote.exit_code == 0, remote.output
    got = json.loads(remote.output)
    assert got["per_class"] == local["per_class"] and got["miou"] == local["miou"]
