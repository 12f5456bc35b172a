"""A conversion killed from outside (a scheduler's timeout, the OOM killer) leaves no pool worker
running; SIGTERM stops it like Ctrl-C, keeping what is done for ``--resume``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from segdata.vocab import write_vocab

pytestmark = pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="reads processes from /proc (Linux)")

IMAGES = 160  # 2048 x 2048 label PNGs: about 6 s of conversion on 2 workers


@pytest.fixture(scope="module")
def label_pngs(tmp_path_factory) -> Path:
    """A label-PNG dataset of IMAGES copies (hard links) of one 2048 x 2048 PNG, 8 classes."""
    root = tmp_path_factory.mktemp("signals") / "labels"
    (root / "ann_dir/train").mkdir(parents=True)
    write_vocab(root / "vocab.json", [{"train_id": t, "name": f"c{t}", "class_ids": [t + 1]} for t in range(8)])
    cells = np.arange(2048) // 64
    first = root / "ann_dir/train/img0000.png"
    Image.fromarray(((cells[:, None] * 3 + cells[None, :] * 5) % 8).astype(np.uint8)).save(first, compress_level=1)
    for i in range(1, IMAGES):
        os.link(first, root / f"ann_dir/train/img{i:04d}.png")
    return root


def _start_time(pid: int) -> str | None:
    """Field 22 of /proc/PID/stat (start time in clock ticks), None when the process is gone or
    a zombie (dead, waiting to be reaped)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()
    except OSError:
        return None
    return None if fields[0] == b"Z" else fields[19].decode()


def _descendants(pid: int) -> dict[int, str]:
    """Every running descendant of ``pid``, with its start time (to tell a reused pid apart)."""
    found: dict[int, str] = {}
    stack = [pid]
    while stack:
        parent = stack.pop()
        for children in Path(f"/proc/{parent}/task").glob("*/children"):
            try:
                pids = [int(p) for p in children.read_text().split()]
            except OSError:
                continue
            for child in pids:
                start = _start_time(child)
                if start is not None and child not in found:
                    found[child] = start
                    stack.append(child)
    return found


def _alive(processes: dict[int, str]) -> list[int]:
    return sorted(pid for pid, start in processes.items() if _start_time(pid) == start)


def _start_conversion(root: Path, out: Path, stderr) -> tuple[subprocess.Popen, dict[int, str]]:
    """Start ``segdata convert label-png ROOT OUT --workers 2`` and wait for its two workers."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "segdata", "convert", "label-png", str(root), str(out), "--workers", "2"],
        stdout=subprocess.DEVNULL,
        stderr=stderr,  # a file: orphaned workers holding a pipe open would block reading it
    )
    deadline = time.monotonic() + 30
    workers: dict[int, str] = {}
    while time.monotonic() < deadline and proc.poll() is None:
        workers = _descendants(proc.pid)
        if len(workers) >= 2:
            return proc, workers
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    pytest.fail(f"the conversion never had 2 workers (exit status {proc.returncode}, seen {workers})")


def _kill_all(processes: dict[int, str]) -> None:
    for pid in _alive(processes):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _wait_gone(processes: dict[int, str], seconds: float) -> list[int]:
    deadline = time.monotonic() + seconds
    while _alive(processes) and time.monotonic() < deadline:
        time.sleep(0.05)
    return _alive(processes)


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_sigkill_of_the_parent_leaves_no_worker(label_pngs, tmp_path):
    with open(tmp_path / "stderr.txt", "w") as stderr:
        proc, workers = _start_conversion(label_pngs, tmp_path / "out", stderr)
    try:
        proc.kill()
        proc.wait(timeout=10)
        assert proc.returncode == -signal.SIGKILL
        left = _wait_gone(workers, seconds=5)
        assert left == [], f"workers {left} still run 5 s after their parent was killed"
    finally:
        proc.kill()
        _kill_all(workers)


def test_sigterm_stops_like_ctrl_c_and_resume_equals_a_clean_run(label_pngs, tmp_path):
    clean = tmp_path / "clean"
    done = subprocess.run(
        [sys.executable, "-m", "segdata", "convert", "label-png", str(label_pngs), str(clean), "--workers", "2"]
        + ["--name", "labels"],  # the manifest names the dataset: the same name in both runs
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr

    out = tmp_path / "out"
    with open(tmp_path / "stderr.txt", "w") as stderr_file:
        proc, workers = _start_conversion(label_pngs, out, stderr_file)
    try:
        # wait for the first commit of finished images (every 2 s), then stop the conversion
        rows = out.with_name(out.name + ".segdata-partial") / "_rows"
        deadline = time.monotonic() + 30
        while not any(rows.glob("*.images.parquet")) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert proc.poll() is None, "the conversion ended before it could be interrupted"
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        stderr = (tmp_path / "stderr.txt").read_text()
        assert proc.returncode == 130, stderr
        assert f"interrupted; rerun with --resume to continue into {out}" in " ".join(stderr.split())
        assert "Traceback" not in stderr
        left = _wait_gone(workers, seconds=5)
        assert left == [], f"workers {left} still run after the conversion stopped"
    finally:
        proc.kill()
        _kill_all(workers)
    assert not out.exists() and out.with_name(out.name + ".segdata-partial").is_dir()

    resumed = subprocess.run(
        [sys.executable, "-m", "segdata", "convert", "label-png", str(label_pngs), str(out), "--workers", "2"]
        + ["--resume", "--json", "--name", "labels"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert resumed.returncode == 0, resumed.stderr
    report = json.loads(resumed.stdout)
    assert report["images"] == IMAGES
    assert 0 < report["resumed_images"] < IMAGES  # something was kept, something was left to do
    clean_files, out_files = _files(clean), _files(out)
    assert sorted(out_files) == sorted(clean_files)
    differing = [name for name in clean_files if clean_files[name] != out_files[name]]
    assert differing == []
