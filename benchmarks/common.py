"""Helpers the benchmarks share: memory of a process tree, and printing the figures."""

from __future__ import annotations

import json
import os
import threading
import time


def _children(pid: int) -> list[int]:
    out = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                out.extend(int(c) for c in f.read().split())
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        pass
    return out


def _tree(pid: int) -> list[int]:
    pids, stack = [], [pid]
    while stack:
        p = stack.pop()
        pids.append(p)
        stack.extend(_children(p))
    return pids


def _status_kib(pid: int, key: str) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        pass
    return 0


def _pss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        pass
    return 0


class TreeMemory:
    """Samples RSS (every ``interval`` s) and PSS (every 10 intervals) of a process tree, in KiB."""

    def __init__(self, pid: int, interval: float = 0.02):
        self.pid = pid
        self.interval = interval
        self.peak_rss = 0
        self.peak_rss_main = 0
        self.peak_pss = 0
        self.peak_processes = 0
        self._stop = threading.Event()

    def _run(self):
        n = 0
        while not self._stop.is_set():
            pids = _tree(self.pid)
            self.peak_processes = max(self.peak_processes, len(pids))
            rss = [_status_kib(p, "VmRSS:") for p in pids]
            self.peak_rss = max(self.peak_rss, sum(rss))
            self.peak_rss_main = max(self.peak_rss_main, rss[0])
            if n % 10 == 0:
                self.peak_pss = max(self.peak_pss, sum(_pss_kib(p) for p in pids))
            n += 1
            time.sleep(self.interval)

    def __enter__(self):
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def print_figures(figures: dict, as_json: bool, width: int = 34) -> None:
    """The figures as JSON, or one aligned ``name value`` line each."""
    if as_json:
        print(json.dumps(figures, indent=1))
        return
    for k, v in figures.items():
        print(f"{k:{width}s} {v}")


def ratio_line(figures: dict, workers: int) -> str:
    return (
        f"segdata converts {figures['ratio']}x as many images per second as Datumaro "
        f"({workers} workers, {os.cpu_count()} cores)"
    )
