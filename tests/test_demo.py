"""segdata demo: generate, convert, validate, summarise, analyse, from scratch."""

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


def test_demo_runs_end_to_end(tmp_path):
    result = CliRunner().invoke(
        main, ["demo", "--out", str(tmp_path / "d"), "--images", "6", "--workers", "1", "--json"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["validation"] == [] and report["summary"]["images"] == 6
    ds = segdata.open(report["dataset"])
    # the summary's top class pixels equal the generated _seg.png files decoded independently
    top = report["summary"]["top_classes"][0]
    pixels = 0
    for png in sorted(Path(report["source"]).rglob("*_seg.png")):  # the main dataset's (not the re-annotation's)
        rgb = np.asarray(Image.open(png).convert("RGB")).astype(np.int64)
        pixels += int(((rgb[..., 0] // 10 * 256 + rgb[..., 1]) == top["class_id"]).sum())
    assert top["pixels"] == pixels
    assert set(report["longtail"]["buckets"]["counts"]) == {"rare", "common", "frequent", "absent"}
    assert sum(report["small_objects"]["size_buckets"].values()) == report["small_objects"]["objects"]
    assert len(ds) == 6
    # the simulated re-annotation: the analysis measures the generator's exact agreement, the
    # breakdown within 0.1 point of the generator's edits and within a point of the published figures
    c = report["consistency"]
    assert c["pixel_agreement"] == pytest.approx(c["generator"]["pixel_agreement"], abs=1e-15)
    assert c["pixel_agreement"] == pytest.approx(consistency.ADE20K_REFERENCE["pixel_agreement"], abs=0.01)
    for category in consistency.CATEGORIES:
        assert c["breakdown"][category] == pytest.approx(c["generator"][category], abs=0.001)
        assert c["breakdown"][category] == pytest.approx(consistency.ADE20K_REFERENCE[category], abs=0.01)
    ceiling = consistency.read_ceiling(c["ceiling"])
    assert ceiling.pixel_accuracy is not None and 0 < ceiling.miou < 1
