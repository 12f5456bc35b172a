"""Command line: bad input gives a clear message and leaves nothing behind; skip, resume,
overwrite; --help everywhere."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from PIL import Image

import segdata
from segdata.cli import main
from segdata.convert import convert, partial_path
from segdata.converters import ade20k
from tests.fixtures.ade20k import ade_rgb, small_2021_dataset

FOLDER = "images/ADE/training/urban/street"
A = "ADE_train_00000001"


def run(*args):
    result = CliRunner().invoke(main, [str(a) for a in args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception  # a traceback is a bug
    return result


@pytest.fixture()
def src(tmp_path):
    return small_2021_dataset(tmp_path / "src")


def assert_nothing_left(out: Path):
    assert not out.exists()
    assert not partial_path(out).exists()


def corrupt_truncated(src):
    p = src / FOLDER / f"{A}_seg.png"
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    return p, "corrupt or truncated PNG"


def corrupt_garbage(src):
    p = src / FOLDER / f"{A}_seg.png"
    p.write_bytes(p.read_bytes()[:33] + b"\x00garbage" * 20)
    return p, "corrupt or truncated PNG"


def corrupt_size(src):
    p = src / FOLDER / f"{A}.jpg"
    Image.fromarray(np.zeros((7, 8, 3), np.uint8)).save(p)
    return src / FOLDER / f"{A}_seg.png", "mask is 8x6 but image ADE_train_00000001.jpg is 8x7"


def corrupt_json_size(src):
    p = src / FOLDER / f"{A}.json"
    ann = json.loads(p.read_text())
    ann["annotation"]["imsize"] = [60, 80, 3]
    p.write_text(json.dumps(ann))
    return src / FOLDER / f"{A}_seg.png", "states 80x60"


def corrupt_unknown_code(src):
    p = src / FOLDER / f"{A}_seg.png"
    rgb = np.asarray(Image.open(p)).copy()
    rgb[0, 0] = ade_rgb(np.array([[999]]), np.array([[7]]))[0, 0]
    Image.fromarray(rgb).save(p)
    return p, "unknown class code 999"


def corrupt_json(src):
    p = src / FOLDER / f"{A}.json"
    p.write_text(p.read_text()[:-20])
    return p, "malformed JSON"


def corrupt_not_ade_encoded(src):
    p = src / FOLDER / f"{A}_seg.png"
    rgb = np.asarray(Image.open(p)).copy()
    rgb[0, 0, 0] = 13
    Image.fromarray(rgb).save(p)
    return p, "not ADE20K-encoded"


def corrupt_grey_seg(src):
    p = src / FOLDER / f"{A}_seg.png"
    Image.fromarray(np.zeros((6, 8), np.uint8)).save(p)
    return p, "expected a 8-bit RGB PNG, found 8-bit grey"


CASES = [
    corrupt_truncated,
    corrupt_garbage,
    corrupt_size,
    corrupt_json_size,
    corrupt_unknown_code,
    corrupt_json,
    corrupt_not_ade_encoded,
    corrupt_grey_seg,
]


@pytest.mark.parametrize("corrupt", CASES, ids=lambda f: f.__name__)
def test_bad_input_fails_cleanly(src, tmp_path, corrupt):
    bad_file, message = corrupt(src)
    out = tmp_path / "out"
    result = run("convert", "ade20k", src, "--to", "unified", out, "--workers", 2)
    assert result.exit_code == 1
    assert str(bad_file) in result.output and message in result.output
    assert "Traceback" not in result.output
    assert_nothing_left(out)


@pytest.mark.parametrize("corrupt", CASES, ids=lambda f: f.__name__)
def test_bad_input_skipped_on_request(src, tmp_path, corrupt):
    bad_file, message = corrupt(src)
    out = tmp_path / "out"
    result = run("convert", "ade20k", src, out, "--on-error", "skip", "--workers", 1)
    assert result.exit_code == 0, result.output
    assert "skipped" in result.output and str(bad_file) in result.output
    ds = segdata.open(out)
    assert list(ds.images.image_id) == ["ADE_train_00000002", "ADE_val_00000001"]
    skipped = ds.problems[ds.problems.action == "skipped"]
    assert list(skipped.image_id) == [A] and list(skipped.file) == [str(bad_file)]
    assert message in skipped.problem.iloc[0]
    assert run("validate", out).exit_code == 0


def test_not_an_ade_layout_lists_what_was_looked_for(tmp_path):
    (tmp_path / "empty").mkdir()
    result = run("convert", "ade20k", tmp_path / "empty", tmp_path / "out")
    assert result.exit_code == 1
    for layout in ("2021_17_01", "2016_07_26", "ADEChallengeData2016", "consistency"):
        assert layout in result.output
    assert_nothing_left(tmp_path / "out")


def test_malformed_atr_line_named(tmp_path):
    folder = tmp_path / "ADE20K_2016_07_26/images/training/a/abbey"
    folder.mkdir(parents=True)
    codes = np.full((3, 3), 312)
    Image.fromarray(ade_rgb(codes, np.full((3, 3), 255))).save(folder / "ADE_train_00000009_seg.png")
    (folder / "ADE_train_00000009_atr.txt").write_text("001 # 0 # wall\n")
    result = run("convert", "ade20k", tmp_path / "ADE20K_2016_07_26", tmp_path / "out")
    assert result.exit_code == 1
    assert "ADE_train_00000009_atr.txt" in result.output and "line 1: expected 6" in result.output


def test_existing_output_refused_unless_overwrite(src, tmp_path):
    out = tmp_path / "out"
    assert run("convert", "ade20k", src, out, "--workers", 1).exit_code == 0
    result = run("convert", "ade20k", src, out, "--workers", 1)
    assert result.exit_code == 1 and "--overwrite" in result.output
    assert run("convert", "ade20k", src, out, "--workers", 1, "--overwrite", "--limit", 1).exit_code == 0
    assert len(segdata.open(out)) == 1


def test_interrupted_run_resumes_and_equals_a_clean_run(src, tmp_path):
    clean = tmp_path / "clean"
    convert(ade20k, src, clean, workers=1)

    out = tmp_path / "out"
    calls = []

    def interrupt_after_two(done, total):
        calls.append(done)
        if done == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        convert(ade20k, src, out, workers=1, progress=interrupt_after_two)
    assert not out.exists() and partial_path(out).is_dir()
    result = run("convert", "ade20k", src, out, "--workers", 1)
    assert result.exit_code == 1 and "--resume" in result.output  # refuses to clobber silently
    report = convert(ade20k, src, out, workers=1, resume=True)
    assert report.resumed_images == 2 and report.images == 3
    a, b = segdata.open(clean), segdata.open(out)
    for table in ("classes", "images", "segments"):
        pd.testing.assert_frame_equal(getattr(a, table), getattr(b, table))
    for image_id in a.images.image_id:
        for layer in a.layers:
            assert np.array_equal(a.segment_map(image_id, layer), b.segment_map(image_id, layer))
    assert not partial_path(out).exists()


def test_copy_images(src, tmp_path):
    out = tmp_path / "out"
    assert run("convert", "ade20k", src, out, "--copy-images", "--workers", 1).exit_code == 0
    ds = segdata.open(out)
    path = ds.image_path(A)
    assert path.is_relative_to(out) and path.read_bytes() == (src / FOLDER / f"{A}.jpg").read_bytes()


def test_json_report_and_info(src, tmp_path):
    out = tmp_path / "out"
    result = run("convert", "ade20k", src, out, "--json", "--workers", 1)
    report = json.loads(result.output)
    assert report["images"] == 3 and report["layers"] == ["objects", "parts-1", "parts-2"]
    info = json.loads(run("info", out, "--json").output)
    assert info["images"] == 3 and info["splits"] == {"train": 2, "val": 1}
    # top class by pixels over the 3 images: tree 3x4 + 4x4 = 28 pixels
    assert info["top_classes"][0]["name"] == "tree" and info["top_classes"][0]["pixels"] == 28


@pytest.mark.parametrize(
    "command",
    [
        [],
        ["convert"],
        ["validate"],
        ["info"],
        ["demo"],
        ["export"],
        ["analyze"],
        ["analyze", "longtail"],
        ["analyze", "small-objects"],
        ["analyze", "consistency"],
        ["vocab"],
    ],
)
def test_every_command_has_help_with_an_example(command):
    result = run(*command, "--help")
    assert result.exit_code == 0 and "Example" in result.output


def test_python_dash_m(src, tmp_path):
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "segdata", "--version"], capture_output=True, text=True)
    assert proc.returncode == 0 and segdata.__version__ in proc.stdout
