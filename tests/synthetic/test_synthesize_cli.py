"""`segdata synthesize ade20k`: help with an example, the JSON summary checked against the files on disk, OUT written
whole or not at all, an existing OUT refused without --overwrite (exit 1, as convert), usage errors exit 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner
from PIL import Image

from segdata.cli import main

SMALL = ["--images", "12", "--classes", "10", "--size", "64x48", "--workers", "1"]


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_help_lists_the_group_and_has_an_example():
    result = invoke("--help")
    assert result.exit_code == 0 and "synthesize" in result.output
    result = invoke("synthesize", "ade20k", "--help")
    assert result.exit_code == 0
    assert "segdata synthesize ade20k synth-ade" in result.output and "--consistency" in result.output


def test_json_summary_matches_the_files(tmp_path):
    out = tmp_path / "synth"
    result = invoke("synthesize", "ade20k", out, *SMALL, "--seed", "7", "--consistency", "2", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    release = out / "ADE20K_2021_17_01"
    assert summary["path"] == str(out) and summary["release"] == str(release)
    assert summary["classes"] == 10 and summary["seed"] == 7 and summary["image_size"] == [48, 64]
    on_disk = {s: len(list((release / "images" / "ADE" / s).rglob("*_seg.png"))) for s in ("training", "validation")}
    assert on_disk == {"training": 10, "validation": 2} == summary["images"]
    jpg = next((release / "images" / "ADE" / "training").rglob("*.jpg"))
    with Image.open(jpg) as im:
        assert im.size == (64, 48)  # WxH
    cons = summary["consistency"]
    base = out / "ADE20K_2017_05_30_consistency" / "images" / "consistencyanalysis"
    assert cons["path"] == str(out / "ADE20K_2017_05_30_consistency")
    assert sorted(p.name for p in (base / "reannotation").glob("*_seg.png")) == [
        "ADE_train_00000001_seg.png",
        "ADE_train_00000002_seg.png",
    ]
    assert cons["stems"] == ["ADE_train_00000001", "ADE_train_00000002"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["synth"]


def test_existing_out_is_refused_then_replaced_with_overwrite(tmp_path):
    out = tmp_path / "synth"
    out.mkdir()
    (out / "mine.txt").write_text("keep")
    result = invoke("synthesize", "ade20k", out, *SMALL)
    assert result.exit_code == 1 and "exists" in result.output and "--overwrite" in result.output
    assert sorted(p.name for p in out.iterdir()) == ["mine.txt"]
    result = invoke("synthesize", "ade20k", out, *SMALL, "--overwrite")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["ADE20K_2021_17_01"]
    assert f"wrote {out}" in result.output and "segdata convert ade20k" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["synth"]


def test_usage_errors_exit_2_and_write_nothing(tmp_path):
    out = tmp_path / "synth"
    for args in (["--size", "64"], ["--size", "8x8"], ["--images", "1"], ["--images", "10", "--consistency", "9"]):
        result = invoke("synthesize", "ade20k", out, *args)
        assert result.exit_code == 2, (args, result.output)
        assert "Traceback" not in result.output
    assert not list(tmp_path.iterdir())


def test_a_failure_leaves_nothing(tmp_path):
    """A folder in the way of the staged output (a read-only parent stands in for a full disk): exit 1, one line."""
    out = tmp_path / "ro" / "synth"
    out.parent.mkdir()
    out.parent.chmod(0o500)
    try:
        result = invoke("synthesize", "ade20k", out, *SMALL)
    finally:
        out.parent.chmod(0o700)
    if result.exit_code == 0:  # running as root: permissions are not enforced
        assert (out / "ADE20K_2021_17_01").is_dir()
        return
    assert result.exit_code == 1 and "error:" in result.output and "Traceback" not in result.output
    assert not list(out.parent.iterdir())


def test_segdata_help_does_not_import_torch(tmp_path):
    code = "import sys; from segdata.cli import main; assert 'torch' not in sys.modules; print('ok')"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=Path(tmp_path))
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr
