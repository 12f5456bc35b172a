"""segdata demo: the whole story from scratch (generate, convert, validate, analyse, ceiling,
train, evaluate, report), checked against values computed here from the generated files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

import segdata
from segdata.analyses import consistency
from segdata.cli import main


def _run(out: Path, *extra: str) -> dict:
    args = ["demo", "--out", str(out), "--images", "30", "--classes", "12", "--size", "64x64"]
    result = CliRunner().invoke(main, [*args, "--consistency-images", "6", "--workers", "1", "--json", *extra])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_demo_without_training(tmp_path):
    report = _run(tmp_path / "d", "--no-train")
    assert report["validation"] == [] and report["summary"]["images"] == 30
    ds = segdata.open(report["dataset"])
    assert len(ds) == 30 and set(ds.images["split"]) == {"train", "val"}
    # the summary's top class pixels equal the generated _seg.png files decoded independently
    top = report["summary"]["top_classes"][0]
    pixels = 0
    for png in sorted(Path(report["source"]).rglob("*_seg.png")):
        rgb = np.asarray(Image.open(png).convert("RGB")).astype(np.int64)
        pixels += int(((rgb[..., 0] // 10 * 256 + rgb[..., 1]) == top["class_id"]).sum())
    assert top["pixels"] == pixels
    assert sum(report["small_objects"]["size_buckets"].values()) == report["small_objects"]["objects"]
    # the simulated re-annotation: the analysis measures the generator's exact agreement, calibrated on ADE20K
    c = report["consistency"]
    assert c["pixel_agreement"] == pytest.approx(c["generator"]["pixel_agreement"], abs=1e-12)
    assert c["pixel_agreement"] == pytest.approx(consistency.ADE20K_REFERENCE["pixel_agreement"], abs=0.05)
    ceiling = consistency.read_ceiling(c["ceiling"])
    assert ceiling.pixel_accuracy is not None and 0 < ceiling.miou < 1
    assert report["training"] == {"skipped": "--no-train"} and report["evaluation"] == {}
    html = Path(report["report"]).read_text()
    assert "<svg" in html and "http://" not in html.replace("http://www.w3.org", "")


def test_demo_trains_evaluates_and_reports(tmp_path):
    pytest.importorskip("torch")
    out = tmp_path / "d"
    report = _run(out, "--iters", "4")
    assert set(report["training"]) == {"uniform", "repeat-factor"}
    for sampler, e in report["evaluation"].items():
        scored = json.loads(Path(e["file"]).read_text())
        assert scored["miou"] == e["miou"]
        # the buckets are the eval's own, on the training split; the ceiling sits next to each
        assert {b["name"] for b in scored["buckets"]} == set(e["buckets"])
        assert scored["ceiling"]["path"] == str(out / "ceiling.json")
        assert (out / "runs" / sampler / "checkpoint.pt").is_file()
    html = Path(report["report"]).read_text()
    assert html.count("uniform") >= 1 and "repeat-factor" in html
    # a rerun replaces what the demo wrote and nothing else
    (out / "mine.txt").write_text("keep")
    _run(out, "--no-train")
    assert (out / "mine.txt").read_text() == "keep" and not (out / "runs").exists()


def test_demo_usage_error_is_one_line(tmp_path):
    result = CliRunner().invoke(main, ["demo", "--out", str(tmp_path / "d"), "--images", "16", "--no-train"])
    assert result.exit_code == 2 and "n_consistency must be in 0..13" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_demo_refuses_a_folder_it_did_not_write(tmp_path):
    out = tmp_path / "d"
    (out / "source").mkdir(parents=True)
    result = CliRunner().invoke(main, ["demo", "--out", str(out), "--no-train", "--images", "16"])
    assert result.exit_code == 1 and "was not written by segdata demo" in result.output
    assert list((out / "source").iterdir()) == []


def test_demo_without_torch_says_what_it_skipped(tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` raises ImportError
    report = _run(tmp_path / "d")
    assert report["training"]["skipped"] == "PyTorch is not installed: pip install 'segdata[torch]'"
    assert report["evaluation"] == {} and Path(report["report"]).is_file()
    result = CliRunner().invoke(
        main,
        ["demo", "--out", str(tmp_path / "e"), "--images", "16", "--classes", "4", "--size", "32x32", "--workers", "1"]
        + ["--consistency-images", "4"],
    )
    assert result.exit_code == 0, result.output
    assert (
        "skipped the training and the evaluation: PyTorch is not installed: pip install 'segdata[torch]'"
        in " ".join(result.output.split())
    )
