"""Reliability (issue 11): exit 0 only for a non-empty result; a data or system problem is one
`error:` line naming the file (exit 1) and leaves nothing half-written; segdata deletes nothing it
did not write without --overwrite; CI runs from a plain clone."""

from __future__ import annotations

import errno
import json
import os
import shutil
import stat
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

import segdata
from segdata.cli import main
from segdata.convert import convert, partial_path
from segdata.converters import ade20k, cityscapes
from segdata.errors import InputError
from segdata.synthetic import generate_cityscapes
from tests.fixtures.ade20k import small_2021_dataset

FOLDER = "images/ADE/training/urban/street"
REPO = Path(__file__).resolve().parents[1]


def run(*args):
    result = CliRunner().invoke(main, [str(a) for a in args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception  # a traceback is a bug
    return result


def error_line(result) -> str:
    """The one line a failed command prints (asserting that it is one `error:` line)."""
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert "Traceback" not in result.output
    return lines[0]


def leftovers(folder: Path) -> list[str]:
    """segdata's temporary names anywhere under ``folder``."""
    marks = (".segdata-partial", ".segdata-old", ".tmp")
    return sorted(str(p) for p in folder.rglob("*") if any(m in p.name for m in marks))


@pytest.fixture()
def src(tmp_path):
    return small_2021_dataset(tmp_path / "src")


@pytest.fixture()
def dataset(src, tmp_path):
    out = tmp_path / "ds"
    convert(ade20k, src, out, workers=1)
    return out


@pytest.fixture()
def a_file(tmp_path):
    """A regular file, to put an output path under (NotADirectoryError)."""
    path = tmp_path / "plain.txt"
    path.write_text("mine\n")
    return path


def no_space(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")  # as a write to an open file: no filename


# ---- 1: a conversion of nothing is an error --------------------------------------------------


def test_convert_split_matching_nothing_names_the_splits(src, tmp_path):
    out = tmp_path / "out"
    result = run("convert", "ade20k", src, out, "--split", "tset", "--workers", 1)
    assert result.exit_code == 1
    line = error_line(result)
    # the fixture holds 2 training images and 1 validation image
    assert "'tset'" in line and "train (2 images)" in line and "val (1 image)" in line
    assert not out.exists() and not partial_path(out).exists()


def test_convert_every_image_skipped_is_an_error(src, tmp_path):
    seg_files = sorted(src.rglob("*_seg.png"))
    assert len(seg_files) == 3
    for p in seg_files:
        p.write_bytes(p.read_bytes()[:40])  # truncated
    out = tmp_path / "out"
    result = run("convert", "ade20k", src, out, "--on-error", "skip", "--workers", 1)
    assert result.exit_code == 1
    line = error_line(result)
    assert "every image was skipped (3 of 3)" in line and "corrupt or truncated PNG" in line
    assert not out.exists() and not partial_path(out).exists()
    with pytest.raises(InputError, match="every image was skipped"):
        convert(ade20k, src, out, workers=1, on_error="skip")
    assert not partial_path(out).exists()


def test_convert_limit_zero_is_a_usage_error(src, tmp_path):
    out = tmp_path / "out"
    assert run("convert", "ade20k", src, out, "--limit", 0).exit_code == 2
    with pytest.raises(ValueError, match="at least 1"):
        convert(ade20k, src, out, limit=0)
    assert not out.exists() and not partial_path(out).exists()


# ---- 5: info counts pixels in longtail's words ------------------------------------------------

#: Cityscapes labelIds with ignoreInEval (cityscapesScripts labels.py)
CITYSCAPES_IGNORE = {0, 1, 2, 3, 4, 5, 6, 9, 10, 14, 15, 16, 18, 29, 30}


def test_info_labelled_ignore_unlabeled_as_longtail(tmp_path):
    root = generate_cityscapes(tmp_path / "cs", 4, image_size=(32, 64), polygons=False)
    out = tmp_path / "out"
    convert(cityscapes, root, out, workers=1)
    # decode the labelIds files independently: ignore = labelIds with ignoreInEval
    total = ignore = 0
    for png in sorted(root.rglob("*_gtFine_labelIds.png")):
        ids = np.asarray(Image.open(png))
        total += ids.size
        ignore += int(np.isin(ids, list(CITYSCAPES_IGNORE)).sum())
    assert 0 < ignore < total
    info = json.loads(run("info", out, "--json").output)
    layer = info["layers"][0]
    assert layer["name"] == "objects"
    assert layer["labelled_fraction"] == pytest.approx((total - ignore) / total, abs=1e-12)
    assert layer["ignore_fraction"] == pytest.approx(ignore / total, abs=1e-12)
    assert layer["unlabeled_fraction"] == 0
    # the same figures as analyze longtail
    tail = json.loads(run("analyze", "longtail", out, "--bootstrap", 0, "--json").output)["accounting"]
    for key in ("labelled_fraction", "ignore_fraction", "unlabeled_fraction"):
        assert layer[key] == pytest.approx(tail[key], abs=1e-12)
    # top classes: no ignore class, shares of the labelled pixels
    names = {c["name"] for c in info["top_classes"]}
    assert not names & {"unlabeled", "ego vehicle", "out of roi"}
    top = info["top_classes"][0]
    assert top["pixel_share"] == pytest.approx(top["pixels"] / (total - ignore), abs=1e-12)
    text = run("info", out).output
    assert "labelled" in text and "ignore" in text and "unlabeled" in text and "100.0%" not in text


def test_info_unlabeled_pixels(src, dataset):
    # unlabeled = ADE class code 0 (R / 10 * 256 + G) in the source's _seg.png files
    total = unlabeled = 0
    for png in sorted(src.rglob("*_seg.png")):
        rgb = np.asarray(Image.open(png).convert("RGB")).astype(np.int64)
        total += rgb.shape[0] * rgb.shape[1]
        unlabeled += int(((rgb[..., 0] // 10 * 256 + rgb[..., 1]) == 0).sum())
    assert unlabeled > 0
    objects = json.loads(run("info", dataset, "--json").output)["layers"][0]
    assert objects["unlabeled_fraction"] == pytest.approx(unlabeled / total, abs=1e-12)
    assert objects["labelled_fraction"] == pytest.approx((total - unlabeled) / total, abs=1e-12)
    assert objects["ignore_fraction"] == 0


# ---- 6: errors of the operating system: one line, exit 1, nothing left --------------------------


def test_convert_output_under_a_file(src, a_file):
    out = a_file / "out"
    result = run("convert", "ade20k", src, out, "--workers", 1)
    assert result.exit_code == 1
    line = error_line(result)
    assert str(a_file) in line and "Not a directory" in line
    assert a_file.read_text() == "mine\n"


@pytest.mark.parametrize("where", ["mask", "table"])
def test_convert_disk_full_cleans_up(src, tmp_path, monkeypatch, where):
    if where == "mask":
        monkeypatch.setattr("segdata.convert.write_segment_map", no_space)
    else:
        monkeypatch.setattr("segdata.convert.pq.write_table", no_space)
    out = tmp_path / "out"
    result = run("convert", "ade20k", src, out, "--workers", 1)
    assert result.exit_code == 1
    assert error_line(result) == f"error: {out}: No space left on device"
    assert not out.exists() and not partial_path(out).exists()


def test_convert_state_file_on_a_full_disk_leaves_nothing(src, tmp_path, monkeypatch):
    real = Path.write_text

    def write_text(self, *args, **kwargs):
        if self.name == "_state.json":
            raise OSError(errno.ENOSPC, "No space left on device", str(self))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", write_text)
    out = tmp_path / "out"
    result = run("convert", "ade20k", src, out, "--workers", 1)
    assert result.exit_code == 1
    assert error_line(result) == f"error: {partial_path(out) / '_state.json'}: No space left on device"
    assert not out.exists() and not partial_path(out).exists()


def test_convert_final_rename_fails_keeps_the_old_output(src, tmp_path, monkeypatch):
    out = tmp_path / "out"
    convert(ade20k, src, out, workers=1, limit=1)
    real_rename = Path.rename

    def rename(self, target):
        if self.name.endswith(".segdata-partial"):
            raise OSError(errno.EROFS, "Read-only file system", str(self))
        return real_rename(self, target)

    monkeypatch.setattr(Path, "rename", rename)
    result = run("convert", "ade20k", src, out, "--workers", 1, "--overwrite")
    assert result.exit_code == 1
    assert error_line(result) == f"error: {partial_path(out)}: Read-only file system"
    assert len(segdata.open(out)) == 1  # the old output is back, whole
    assert leftovers(tmp_path) == []


def _mount_tmpfs(folder: Path, options: str) -> bool:
    folder.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True)
    return proc.returncode == 0


@pytest.mark.parametrize("options, cause", [("size=16k", "No space left on device"), ("ro", "Read-only file system")])
def test_convert_on_a_real_full_or_read_only_disk(tmp_path, options, cause):
    src = generate_cityscapes(tmp_path / "cs", 6, image_size=(64, 128), polygons=False)
    disk = tmp_path / "disk"
    if not _mount_tmpfs(disk, options):
        pytest.skip("mounting a tmpfs needs root")
    try:
        out = disk / "out"
        result = run("convert", "cityscapes", src, out, "--workers", 2)
        assert result.exit_code == 1
        line = error_line(result)
        assert str(disk) in line and cause in line
        assert list(disk.iterdir()) == []
    finally:
        subprocess.run(["umount", str(disk)], check=True)


@pytest.fixture()
def cs_dataset(tmp_path):
    root = generate_cityscapes(tmp_path / "cs", 2, image_size=(32, 64), polygons=False)
    out = tmp_path / "cs-unified"
    convert(cityscapes, root, out, workers=1)
    return out


@pytest.mark.parametrize("target", ["coco-panoptic", "label-png", "cityscapes"])
def test_export_output_under_a_file(cs_dataset, a_file, target):
    result = run("export", cs_dataset, "--to", target, a_file / "out", "--workers", 1)
    assert result.exit_code == 1
    line = error_line(result)
    assert str(a_file) in line and "Not a directory" in line


@pytest.mark.parametrize("target", ["coco-panoptic", "label-png", "cityscapes"])
def test_export_failing_rename_leaves_nothing(cs_dataset, tmp_path, monkeypatch, target):
    def read_only(tmp, out):
        raise OSError(errno.EROFS, "Read-only file system", str(out))

    monkeypatch.setattr("segdata.convert._move_into_place", read_only)
    out = tmp_path / "exported"
    result = run("export", cs_dataset, "--to", target, out, "--workers", 1)
    assert result.exit_code == 1
    assert error_line(result) == f"error: {out}: Read-only file system"
    assert not out.exists() and leftovers(tmp_path) == []


def _deny(monkeypatch, name: str):
    """Reading the file ``name`` (any folder) raises PermissionError, as for a user without the
    right (the tests run as root, whom chmod does not stop)."""
    for method in ("read_text", "read_bytes"):
        real = getattr(Path, method)

        def read(self, *args, _real=real, **kwargs):
            if self.name == name:
                raise PermissionError(errno.EACCES, "Permission denied", str(self))
            return _real(self, *args, **kwargs)

        monkeypatch.setattr(Path, method, read)


@pytest.mark.parametrize(
    "command",
    [
        lambda ds, tmp: ["validate", ds],
        lambda ds, tmp: ["info", ds],
        lambda ds, tmp: ["analyze", "longtail", ds],
        lambda ds, tmp: ["analyze", "small-objects", ds],
        lambda ds, tmp: ["analyze", "consistency", ds],
        lambda ds, tmp: ["vocab", ds, "--top", 2, "-o", tmp / "v.json"],
        lambda ds, tmp: ["export", ds, "--to", "label-png", tmp / "exported"],
    ],
    ids=["validate", "info", "longtail", "small-objects", "consistency", "vocab", "export"],
)
def test_permission_denied_on_input(dataset, tmp_path, monkeypatch, command):
    _deny(monkeypatch, "segdata.json")
    result = run(*command(dataset, tmp_path))
    assert result.exit_code == 1
    assert error_line(result) == f"error: {dataset / 'segdata.json'}: Permission denied"


def test_convert_permission_denied_on_source(src, tmp_path, monkeypatch):
    _deny(monkeypatch, "ADE_train_00000001.json")
    out = tmp_path / "out"
    result = run("convert", "ade20k", src, out, "--workers", 1)
    assert result.exit_code == 1
    assert error_line(result) == f"error: {src / FOLDER / 'ADE_train_00000001.json'}: Permission denied"
    assert not out.exists() and not partial_path(out).exists()


@pytest.mark.parametrize(
    "option",
    [
        ["analyze", "longtail", "--bootstrap", "0", "--buckets-out"],
        ["analyze", "longtail", "--bootstrap", "0", "--plots"],
        ["analyze", "small-objects", "--workers", "1", "--plots"],
        ["analyze", "consistency", "--layers", "objects,parts-1", "--bootstrap", "0", "--ceiling-out"],
        ["analyze", "consistency", "--layers", "objects,parts-1", "--bootstrap", "0", "--plots"],
        ["vocab", "--top", "2", "-o"],
    ],
    ids=lambda o: " ".join(o),
)
def test_analysis_output_under_a_file(dataset, a_file, option):
    command, rest, flag = option[:-1], [], option[-1]
    if command[0] == "analyze":
        command, rest = command[:2], command[2:]
    else:
        command, rest = command[:1], command[1:]
    result = run(*command, dataset, *rest, flag, a_file / "out")
    assert result.exit_code == 1
    line = error_line(result)
    # the cause in the operating system's words, or pandas' (the buckets CSV)
    assert str(a_file) in line and ("Not a directory" in line or "non-existent directory" in line)
    assert a_file.read_text() == "mine\n" and leftovers(a_file.parent) == []


def test_analysis_disk_full_leaves_nothing(dataset, tmp_path, monkeypatch):
    monkeypatch.setattr("pandas.DataFrame.to_csv", no_space)
    buckets = tmp_path / "buckets.csv"
    result = run("analyze", "longtail", dataset, "--bootstrap", 0, "--buckets-out", buckets)
    assert result.exit_code == 1
    assert error_line(result) == f"error: {buckets}: No space left on device"
    assert not buckets.exists() and leftovers(tmp_path) == []


def test_plots_that_fail_halfway_leave_nothing(dataset, tmp_path, monkeypatch):
    from segdata.analyses.plotting import FigureWriter

    real = FigureWriter.save
    calls = []

    def save(self, fig, name):
        calls.append(name)
        if len(calls) == 2:  # the second figure does not fit on the disk
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, fig, name)

    monkeypatch.setattr(FigureWriter, "save", save)
    plots = tmp_path / "plots"
    plots.mkdir()
    (plots / "notes.txt").write_text("mine\n")
    result = run("analyze", "longtail", dataset, "--bootstrap", 0, "--plots", plots)
    assert result.exit_code == 1
    assert error_line(result) == f"error: {plots}: No space left on device"
    assert sorted(p.name for p in plots.iterdir()) == ["notes.txt"] and leftovers(tmp_path) == []


def test_plots_land_in_the_folder(dataset, tmp_path):
    plots = tmp_path / "plots"
    report = json.loads(run("analyze", "longtail", dataset, "--bootstrap", 0, "--plots", plots, "--json").output)
    assert report["plots"] and all(Path(p).parent == plots and Path(p).is_file() for p in report["plots"])
    assert leftovers(tmp_path) == []


def test_plots_into_the_current_folder(dataset, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    report = json.loads(run("analyze", "longtail", dataset, "--bootstrap", 0, "--plots", ".", "--json").output)
    assert report["plots"] and all((tmp_path / p).is_file() for p in report["plots"])
    assert leftovers(tmp_path.parent) == []


def test_vocab_onto_a_folder(dataset, tmp_path):
    folder = tmp_path / "v.json"
    folder.mkdir()
    result = run("vocab", dataset, "--top", 2, "-o", folder)
    assert result.exit_code == 1
    assert str(folder) in error_line(result)
    assert leftovers(tmp_path) == [] and list(folder.iterdir()) == []


def test_demo_out_is_a_file(a_file):
    result = run("demo", "--out", a_file, *DEMO)
    assert result.exit_code == 1
    line = error_line(result)
    assert str(a_file) in line and "not a folder" in line
    assert a_file.read_text() == "mine\n"


def test_demo_out_under_a_file(a_file):
    result = run("demo", "--out", a_file / "demo", *DEMO)
    assert result.exit_code == 1
    line = error_line(result)
    assert str(a_file) in line and "Not a directory" in line


def test_result_that_cannot_be_printed_is_an_error(dataset, monkeypatch):
    monkeypatch.setattr("segdata.cli.click.echo", no_space)  # standard output on a full disk
    result = run("info", dataset, "--json")
    assert result.exit_code == 1
    assert error_line(result) == "error: <standard output>: No space left on device"


@pytest.mark.parametrize("as_json", [True, False])
def test_stdout_on_a_real_full_disk(dataset, tmp_path, as_json):
    disk = tmp_path / "disk"
    if not _mount_tmpfs(disk, "size=4k"):
        pytest.skip("mounting a tmpfs needs root")
    try:
        (disk / "filler").write_bytes(b"x" * 4096)
        with open(disk / "out.txt", "w") as stdout:
            proc = subprocess.run(
                [sys.executable, "-m", "segdata", "info", str(dataset), *(["--json"] if as_json else [])],
                stdout=stdout,
                stderr=subprocess.PIPE,
                text=True,
                timeout=60,
            )
        assert proc.returncode == 1
        assert proc.stderr.strip() == "error: <standard output>: No space left on device"
    finally:
        subprocess.run(["umount", str(disk)], check=True)


@pytest.mark.parametrize("command", ["vocab", "buckets"])
def test_output_to_a_fifo_is_written_not_replaced(dataset, tmp_path, command):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    received = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_text()), daemon=True)
    reader.start()
    if command == "vocab":
        result = run("vocab", dataset, "--top", 2, "-o", fifo)
    else:
        result = run("analyze", "longtail", dataset, "--bootstrap", 0, "--buckets-out", fifo)
    assert result.exit_code == 0, result.output
    assert stat.S_ISFIFO(fifo.stat().st_mode)  # still the pipe, not a file put in its place
    reader.join(timeout=10)
    expected = '"format": "segdata-vocab"' if command == "vocab" else "class_id,name,bucket"
    assert received and expected in received[0]
    assert leftovers(tmp_path) == []


# ---- 9: nothing deleted that segdata did not write; nothing of segdata's left behind -------------


DEMO = [
    "--images",
    "8",
    "--classes",
    "4",
    "--size",
    "32x32",
    "--consistency-images",
    "0",
    "--no-train",
    "--workers",
    "1",
    "--json",
]


def test_demo_keeps_a_folder_it_did_not_write(tmp_path):
    out = tmp_path / "d"
    (out / "source").mkdir(parents=True)
    (out / "source" / "thesis.tex").write_text("mine\n")
    result = run("demo", "--out", out, *DEMO)
    assert result.exit_code == 1
    line = error_line(result)
    assert str(out / "source") in line and "--overwrite" in line
    assert (out / "source" / "thesis.tex").read_text() == "mine\n"
    assert sorted(p.name for p in out.iterdir()) == ["source"]


def test_demo_overwrite_replaces_only_its_own_entries(tmp_path):
    out = tmp_path / "d"
    (out / "source").mkdir(parents=True)
    (out / "source" / "thesis.tex").write_text("mine\n")
    (out / "notes.txt").write_text("mine\n")
    result = run("demo", "--out", out, *DEMO, "--overwrite")
    assert result.exit_code == 0, result.output
    assert not (out / "source" / "thesis.tex").exists() and (out / "notes.txt").read_text() == "mine\n"
    assert len(segdata.open(out / "ade20k-unified")) == 8


def test_demo_rerun_replaces_its_own_output(tmp_path):
    out = tmp_path / "d"
    assert run("demo", "--out", out, *DEMO).exit_code == 0
    result = run("demo", "--out", out, "--images", 9, *DEMO[2:])
    assert result.exit_code == 0, result.output
    assert len(segdata.open(out / "ade20k-unified")) == 9
    assert sorted(p.name for p in out.iterdir()) == [".segdata-demo", "ade20k-unified", "report.html", "source"]
    assert leftovers(tmp_path) == []


def test_demo_that_fails_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr("segdata.demo.validate", no_space)
    fresh = tmp_path / "fresh"
    result = run("demo", "--out", fresh, *DEMO)
    assert result.exit_code == 1 and "No space left on device" in error_line(result)
    assert not fresh.exists()
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("mine\n")
    assert run("demo", "--out", mine, *DEMO).exit_code == 1
    assert sorted(p.name for p in mine.iterdir()) == ["notes.txt"]


@pytest.mark.parametrize("kind", ["file", "link"])
def test_convert_overwrite_onto_a_file_leaves_no_old(src, tmp_path, kind):
    out = tmp_path / "out"
    if kind == "file":
        out.write_text("mine\n")
    else:
        (tmp_path / "elsewhere").mkdir()
        (tmp_path / "elsewhere" / "keep.txt").write_text("mine\n")
        out.symlink_to(tmp_path / "elsewhere")
    assert run("convert", "ade20k", src, out, "--workers", 1).exit_code == 1  # refused without --overwrite
    assert out.is_symlink() or out.read_text() == "mine\n"
    result = run("convert", "ade20k", src, out, "--workers", 1, "--overwrite")
    assert result.exit_code == 0, result.output
    assert out.is_dir() and not out.is_symlink() and len(segdata.open(out)) == 3
    assert leftovers(tmp_path) == []
    if kind == "link":  # the link is replaced, not what it pointed to
        assert (tmp_path / "elsewhere" / "keep.txt").read_text() == "mine\n"


def test_export_overwrite_onto_a_file_leaves_no_old(dataset, tmp_path):
    out = tmp_path / "panoptic"
    out.write_text("mine\n")
    result = run("export", dataset, "--to", "coco-panoptic", out, "--workers", 1, "--overwrite")
    assert result.exit_code == 0, result.output
    assert out.is_dir() and leftovers(tmp_path) == []


# ---- 10: .ci/run from a plain clone --------------------------------------------------------------


def _run_ci(clone: Path, tmp_path: Path) -> dict:
    """Run .ci/run in ``clone`` with stand-ins for python3, pip, ruff and pytest that record the
    environment pytest would see."""
    (clone / ".ci").mkdir(parents=True)
    shutil.copy(REPO / ".ci" / "run", clone / ".ci" / "run")
    fake = tmp_path / "fakebin"
    fake.mkdir(exist_ok=True)
    record = tmp_path / "env.json"
    python = f"""#!/usr/bin/env bash
if [ "$1" = "-m" ] && [ "$2" = "venv" ]; then
    mkdir -p "$3/bin"
    printf 'export PATH="%s:$PATH"\\n' "$(cd "$3/bin" && pwd)" > "$3/bin/activate"
    cp "$0" "$3/bin/python"; printf '#!/bin/sh\\nexit 0\\n' > "$3/bin/ruff"; chmod +x "$3/bin/ruff"
    exit 0
fi
if [ "$1" = "-m" ] && [ "$2" = "pytest" ]; then
    if [ -n "${{SEGDATA_SAMPLES+x}}" ]; then set=true; else set=false; fi
    printf '{{"set": %s, "value": "%s"}}' "$set" "${{SEGDATA_SAMPLES:-}}" > {record}
fi
exit 0
"""
    (fake / "python3").write_text(python)
    (fake / "python3").chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k not in ("SEGDATA_SAMPLES", "VIRTUAL_ENV")}
    env["PATH"] = f"{fake}:/usr/bin:/bin"
    proc = subprocess.run(["bash", str(clone / ".ci" / "run")], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return json.loads(record.read_text())


def test_ci_run_from_a_plain_clone_leaves_samples_unset(tmp_path):
    seen = _run_ci(tmp_path / "work" / "segdata", tmp_path)
    assert seen == {"set": False, "value": ""}


def test_ci_run_next_to_shared_samples_sets_them(tmp_path):
    samples = tmp_path / "work" / "shared" / "samples"
    samples.mkdir(parents=True)
    seen = _run_ci(tmp_path / "work" / "segdata", tmp_path)
    assert seen == {"set": True, "value": str(samples)}
