"""The process pool's helpers: glibc kept from returning per-image buffers to the kernel."""

from __future__ import annotations

import json
import platform
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

from segdata.runner import parallel_map

# allocate, touch and free a 4 MiB block 30 times; count the page faults of the last 20 rounds
PROBE = """
import json, resource, sys
import numpy as np
from segdata.runner import keep_freed_memory
tuned = keep_freed_memory() if sys.argv[1] == "tuned" else None
def round_():
    a = np.empty(4 << 20, dtype=np.uint8); a[:] = 1; b = np.empty(4 << 20, dtype=np.uint8); b[:] = 2
    del a, b
for _ in range(10):
    round_()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    round_()
print(json.dumps({"tuned": tuned, "faults": resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before}))
"""


def _probe(mode: str) -> dict:
    out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


@pytest.mark.skipif(not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_keep_freed_memory_removes_the_page_faults_of_repeated_buffers():
    # each round touches 8 MiB: up to 2,048 pages of 4 KiB when the memory comes fresh from the
    # kernel (measured here by default: about 1,000 faults a round)
    default, tuned = _probe("default"), _probe("tuned")
    assert tuned["tuned"] is True
    assert default["faults"] >= 20 * 500
    assert tuned["faults"] < 100


def _square(x: int) -> int:
    return x * x


def test_parallel_map_gives_every_result_once():
    assert sorted(parallel_map(_square, range(50), workers=2, batch_size=3)) == [x * x for x in range(50)]


class _RecordingExecutor(ThreadPoolExecutor):
    """A thread pool that records the size of every batch parallel_map submits."""

    def __init__(self):
        super().__init__(max_workers=2)
        self.batches: list[int] = []

    def submit(self, fn, *args, **kwargs):
        self.batches.append(len(args[1]))  # _run_batch(fn, batch)
        return super().submit(fn, *args, **kwargs)


@pytest.mark.parametrize("n", [0, 1, 5, 37, 200])
def test_every_item_once_and_the_last_batches_shrink(n):
    with _RecordingExecutor() as pool:
        out = sorted(parallel_map(_square, list(range(n)), workers=2, batch_size=8, executor=pool))
    assert out == [x * x for x in range(n)]
    assert sum(pool.batches) == n
    if n == 200:  # full batches first, then smaller ones: 200 // (2 * 2) >= 8 until 32 items are left
        assert pool.batches[:21] == [8] * 21 and pool.batches[-1] == 1
        assert pool.batches == sorted(pool.batches, reverse=True)
    # an iterator (no length): full batches throughout
    with _RecordingExecutor() as pool:
        sum(1 for _ in parallel_map(_square, iter(range(n)), workers=2, batch_size=8, executor=pool))
    assert pool.batches == [8] * (n // 8) + ([n % 8] if n % 8 else [])


WATCHED = """
import sys, time
from segdata.runner import exit_with_parent
print(exit_with_parent(int(sys.argv[1]), poll_seconds=0.05), flush=True)
time.sleep(30)
"""


def test_exit_with_parent_ends_the_process_when_a_watched_pid_dies():
    # the watched pid is not this child's parent: the watchdog thread, not PR_SET_PDEATHSIG, acts
    watched = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    child = subprocess.Popen([sys.executable, "-c", WATCHED, str(watched.pid)], stdout=subprocess.PIPE, text=True)
    try:
        assert "watchdog" in child.stdout.readline()
        assert child.poll() is None
        watched.kill()
        watched.wait()
        assert child.wait(timeout=5) == 1
    finally:
        watched.kill()
        child.kill()
        child.wait()


def test_exit_with_parent_exits_at_once_when_the_parent_is_already_gone():
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    child = subprocess.run([sys.executable, "-c", WATCHED, str(gone.pid)], capture_output=True, text=True, timeout=20)
    assert child.returncode == 1 and child.stdout == ""
