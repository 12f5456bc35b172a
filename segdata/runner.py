"""The parallel map that per-image work runs on.

Per-image work is a map, dataset statistics a reduce. :func:`parallel_map` runs a picklable
function over items in a local process pool (default: one worker per core) or inline when
``workers == 1``, yielding results as they complete with a bounded number of tasks in flight,
so memory does not grow with the number of items. Items are sent in small batches to keep the
per-task overhead of the pool negligible on datasets of tens of thousands of small images.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import platform
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from collections.abc import Sequence as _SequenceABC
from concurrent.futures import FIRST_COMPLETED, Executor, Future, ProcessPoolExecutor, wait
from typing import TypeVar

from .errors import SegdataError

T = TypeVar("T")
R = TypeVar("R")


def default_workers() -> int:
    """Number of cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - macOS, Windows
        return max(1, os.cpu_count() or 1)


#: glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3


def keep_freed_memory(trim_bytes: int = 256 << 20, mmap_bytes: int = 32 << 20) -> bool:
    """Ask glibc's allocator to keep freed memory for reuse instead of returning it to the kernel.

    Per-image work allocates and frees the same few megabytes per image (a decoded 2-megapixel
    mask is 2 to 4 MiB). By default glibc gives blocks that large back to the kernel, and the next
    image touches fresh pages: about a thousand page faults per mask, which on the reference
    virtual machine (4 us per fault) cost four times the decoding itself. Keeping up to
    ``trim_bytes`` of freed memory per process, and serving blocks under ``mmap_bytes`` from the
    heap, removes them. segdata calls this in its own pool workers only; it changes nothing in
    the calling process. Returns False where the C library is not glibc.
    """
    if not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc":
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # pragma: no cover - glibc always has it
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    return bool(mallopt(_M_MMAP_THRESHOLD, mmap_bytes)) and bool(mallopt(_M_TRIM_THRESHOLD, trim_bytes))


#: linux/prctl.h
_PR_SET_PDEATHSIG = 1


def _set_parent_death_signal(sig: int) -> bool:
    """Ask Linux to send ``sig`` to this process when its parent exits; False where unavailable."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):  # pragma: no cover - every Linux libc has it
        return False
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    return prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0) == 0


def _pid_alive(pid: int) -> bool:
    """Whether process ``pid`` still runs (a zombie, dead but not yet reaped, counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # pragma: no cover - exists, owned by another user
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (OSError, IndexError):  # no /proc (macOS): trust kill(pid, 0)
        return True


def _watchdog(alive: Callable[[], bool], poll_seconds: float) -> None:
    while alive():
        time.sleep(poll_seconds)
    os._exit(1)


def exit_with_parent(parent_pid: int, poll_seconds: float = 0.5) -> str:
    """Make this process exit as soon as ``parent_pid``, the process that started it, dies.

    A pool worker must not outlive the process that owns its pool: when that one is killed
    (SIGKILL from a scheduler's timeout or the OOM killer) nothing would stop its workers. On
    Linux the kernel kills this process with SIGKILL when its parent exits (``PR_SET_PDEATHSIG``);
    the parent may have died before that request, so the parent pid is checked after it.
    Elsewhere, or when ``parent_pid`` is not the direct parent (a worker forked by
    multiprocessing's fork server, which itself exits with the pool's owner), a daemon thread
    checks every ``poll_seconds`` seconds that ``parent_pid`` is alive and ends the process
    (exit status 1) when it is not. Returns how the process is watched: ``"pdeathsig"``,
    ``"watchdog"`` or ``"pdeathsig+watchdog"``.

    Notes
    -----
    Linux sends the signal when the *thread* that started the process exits: a pool must be used
    by the thread that created it (:func:`parallel_map` creates and shuts down its pool in the
    thread that iterates it).
    """
    direct = os.getppid() == parent_pid
    armed = _set_parent_death_signal(signal.SIGKILL)
    if direct and armed:
        if os.getppid() != parent_pid:  # the parent died before prctl: no signal will come
            os._exit(1)
        return "pdeathsig"
    if not _pid_alive(parent_pid):
        os._exit(1)
    if direct:
        alive = lambda: os.getppid() == parent_pid  # noqa: E731 - a reparented process is orphaned
    else:
        alive = lambda: _pid_alive(parent_pid)  # noqa: E731
    threading.Thread(target=_watchdog, args=(alive, poll_seconds), name="segdata-watchdog", daemon=True).start()
    return "pdeathsig+watchdog" if armed else "watchdog"


def _init_worker(parent_pid: int | None = None) -> None:
    # Ctrl-C reaches the whole process group: workers ignore it and the parent, which owns the
    # output, stops the pool cleanly (no traceback from every worker).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # a forked worker inherits the CLI's SIGTERM handler (which stops a conversion for --resume);
    # SIGTERM sent to a worker itself ends it
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if parent_pid is not None:
        exit_with_parent(parent_pid)
    keep_freed_memory()


def _run_batch(fn: Callable[[T], R], batch: Sequence[T]) -> list[R]:
    return [fn(item) for item in batch]


def parallel_map(
    fn: Callable[[T], R],
    items: Iterable[T],
    *,
    workers: int | None = None,
    batch_size: int = 4,
    executor: Executor | None = None,
    ordered: bool = False,
) -> Iterator[R]:
    """Apply ``fn`` to every item; yield the results in completion order (``ordered``: in the
    order of ``items``, holding back results that complete early).

    Parameters
    ----------
    fn : callable
        Must be picklable (a module-level function or a ``functools.partial`` of one).
    items : iterable
    workers : int, optional
        Processes to use; default all cores. 1 runs inline in this process.
    batch_size : int
        Items per task sent to a worker; when ``items`` is a sequence, the last batches are
        smaller (down to one item) so that the workers finish together.
    executor : concurrent.futures.Executor, optional
        Use this executor instead of a local process pool (for example a Dask
        ``Client.get_executor()``); it is not shut down here.
    ordered : bool
        Yield in input order instead of completion order.

    Notes
    -----
    An exception raised by ``fn`` propagates to the caller; tasks not yet started are cancelled.
    The workers of the local pool exit when this process dies, even by SIGKILL
    (:func:`exit_with_parent`).
    """
    workers = default_workers() if workers is None else max(1, int(workers))
    if executor is None and workers == 1:
        for item in items:
            yield fn(item)
        return
    own = executor is None
    pool = executor or ProcessPoolExecutor(max_workers=workers, initializer=_init_worker, initargs=(os.getpid(),))
    in_flight: set[Future] = set()
    position: dict[Future, int] = {}  # batch number of each future
    held: dict[int, list] = {}  # ordered: results of batches that completed ahead of their turn
    next_out = 0
    submitted = 0
    limit = 4 * workers
    iterator = iter(items)
    # with a known length the last batches shrink (down to one item), so that no worker sits
    # idle while another finishes a full batch at the end
    left = len(items) if isinstance(items, _SequenceABC) else None
    try:
        exhausted = False
        while True:
            while not exhausted and len(in_flight) < limit:
                size = batch_size if left is None else max(1, min(batch_size, left // (2 * workers)))
                batch = []
                for item in iterator:
                    batch.append(item)
                    if len(batch) == size:
                        break
                if left is not None:
                    left -= len(batch)
                if not batch:
                    exhausted = True
                    break
                future = pool.submit(_run_batch, fn, batch)
                position[future] = submitted
                submitted += 1
                in_flight.add(future)
            if not in_flight:
                return
            done, in_flight = wait(in_flight, return_when=FIRST_COMPLETED)
            for future in done:
                batch_number = position.pop(future)
                if not ordered:
                    yield from future.result()
                    continue
                held[batch_number] = future.result()
                while next_out in held:
                    yield from held.pop(next_out)
                    next_out += 1
    finally:
        for future in in_flight:
            future.cancel()
        if own:
            pool.shutdown(wait=True, cancel_futures=True)


class SchedulerError(SegdataError):
    """The Dask scheduler named by ``--scheduler`` cannot be reached (or dask is not installed)."""


def dask_executor(address: str, timeout: float = 30):
    """Connect to the Dask scheduler at ``address`` (``tcp://host:8786``).

    ``dask.distributed`` is imported here, lazily: it is an optional extra (``pip install
    'segdata[dask]'``). The workers must be able to import segdata and read the dataset paths.

    Returns
    -------
    client, executor, slots : dask.distributed.Client, concurrent.futures.Executor, int
        Pass ``executor`` (and ``slots``, the cluster's worker threads, as ``workers``) to
        :func:`parallel_map`; close ``client`` when done.
    """
    from dask.distributed import Client

    client = Client(address, timeout=timeout)
    slots = max(1, sum(client.nthreads().values()))
    return client, client.get_executor(), slots


@contextlib.contextmanager
def executor_for(scheduler: str | None, workers: int | None = None, timeout: float = 30):
    """``with executor_for(address, workers) as (executor, workers):`` what every command that maps
    over images passes on to :func:`parallel_map`.

    With ``scheduler`` None: ``(None, workers)``, the local process pool. With an address: the
    cluster's executor and, unless ``workers`` is given, its number of worker threads; the client
    is closed on exit. Raises :class:`SchedulerError` when dask is missing or the scheduler
    cannot be reached.
    """
    if not scheduler:
        yield None, workers
        return
    try:
        client, executor, slots = dask_executor(scheduler, timeout=timeout)
    except ImportError:
        raise SchedulerError("--scheduler needs dask.distributed: pip install 'segdata[dask]'") from None
    except (OSError, TimeoutError) as exc:
        raise SchedulerError(f"cannot reach the Dask scheduler at {scheduler}: {exc}") from None
    try:
        yield executor, workers or slots
    finally:
        client.close()
