"""segdata demo: generate, convert, validate, summarise, analyse, from scratch."""

from __future__ import annotations

import json

import numpy as np
from click.testing import CliRunner
from PIL import Image

import segdata
from segdata.cli import main


def test_demo_runs_end_to_end(tmp_path):
    result = CliRunner().invoke(main, ["demo", "--out", str(tmp_path / "d"), "--images", "6", "--workers", "1", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["validation"] == [] and report["summary"]["images"] == 6
    ds = segdata.open(report["dataset"])
    # the summary's top class pixels equal the generated _seg.png files decoded independently
    top = report["summary"]["top_classes"][0]
    pixels = 0
    for png in sorted(tmp_path.rglob("*_seg.png")):
        rgb = np.asarray(Image.open(png).convert("RGB")).astype(np.int64)
        pixels += int(((rgb[..., 0] // 10 * 256 + rgb[..., 1]) == top["class_id"]).sum())
    assert top["pixels"] == pixels
    assert set(report["longtail"]["buckets"]["counts"]) == {"rare", "common", "frequent", "absent"}
    assert sum(report["small_objects"]["size_buckets"].values()) == report["small_objects"]["objects"]
    assert len(ds) == 6
