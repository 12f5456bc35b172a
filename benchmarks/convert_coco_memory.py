"""Peak memory of ``segdata convert coco`` on an instances JSON of COCO train2017's size.

Generates (once, into --data) a synthetic COCO instances dataset with train2017's counts:
118,287 images, 860,001 annotations, about 450 MB of JSON with records of the real files' shape
and size (polygons of realistic length, 1% crowd RLEs; see ``segdata.synthetic.coco``). The
whole JSON is read; the images are small (64x48 by default) so that the run measures what the
JSON costs, not the pixel work, and finishes in minutes.

The conversion runs in a child process (``segdata.convert.convert`` with the coco converter);
this process samples the child's process tree (the child and its workers) every 20 ms:

- ``peak_rss_tree``: the largest sum of resident set sizes of the tree. Worker processes are
  forked from the main process and share its pages copy-on-write; RSS counts such a page once
  per process, so this overstates what the machine spends.
- ``peak_pss_tree``: the largest sum of proportional set sizes (``/proc/PID/smaps_rollup``;
  a page shared by N processes counts 1/N in each): the memory the conversion really occupies.
  Sampled every 200 ms (reading smaps is slower).
- ``peak_rss_main``: the child's own peak RSS (``VmHWM``).

    python benchmarks/convert_coco_memory.py                   # full size, all cores
    python benchmarks/convert_coco_memory.py --images 20000 --annotations 145000 --workers 2
    python benchmarks/convert_coco_memory.py --json

The budget is 3 GB for the whole tree; the script exits 1 when ``peak_rss_tree`` exceeds
``--budget-gib``.

Measured here (2 cores, 426 MiB JSON, 118,287 images of 64x48, 860,001 annotations):

| workers | peak RSS, tree | peak PSS, tree | peak RSS, main | listing (s) | total (s) |
|---|---|---|---|---|---|
| 2  | 536 MiB  | 436 MiB | 469 MiB | 16 | 238 |
| 16 | 2635 MiB | 432 MiB | 468 MiB | 14 | 137 |

Each worker's RSS is ~130 MiB, nearly all of it the libraries every worker imports (NumPy,
pandas, pyarrow, pycocotools), shared with the other processes: PSS stays flat with the number
of workers, RSS grows by the baseline per worker. ``json.load`` of the same JSON alone peaks at
2.6 GB and takes 31 s here.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import TreeMemory, _status_kib, print_figures


def _child(src: str, out: str, workers: int) -> int:
    """Run in the child process: convert and print the report plus phase timings as JSON."""
    from segdata.convert import convert
    from segdata.converters import coco

    t0 = time.perf_counter()
    first = {}

    def progress(done, total):
        if "listed" not in first:
            first["listed"] = time.perf_counter() - t0  # first call comes after list_images

    report = convert(coco, src, out, workers=workers, progress=progress)
    figures = {
        "images": report.images,
        "segments": report.segments,
        "problems": len(report.problems),
        "seconds": round(time.perf_counter() - t0, 1),
        "listing_seconds": round(first.get("listed", 0.0), 1),
        "peak_rss_main_kib": _status_kib(os.getpid(), "VmHWM:"),
    }
    print(json.dumps(figures))
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=118_287)
    ap.add_argument("--annotations", type=int, default=860_001)
    ap.add_argument("--size", default="64x48", help="image size WxH (default 64x48)")
    ap.add_argument("--workers", type=int, help="conversion workers (default: all cores)")
    ap.add_argument(
        "--data", type=Path, help="where to generate the source (kept and reused; default: a temporary directory)"
    )
    ap.add_argument(
        "--no-image-files", action="store_true", help="do not write the image files (each is then a problem)"
    )
    ap.add_argument("--budget-gib", type=float, default=3.0)
    ap.add_argument("--json", action="store_true", help="print the figures as JSON")
    ap.add_argument("--child", nargs=3, metavar=("SRC", "OUT", "WORKERS"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        return _child(args.child[0], args.child[1], int(args.child[2]))

    from segdata.runner import default_workers
    from segdata.synthetic.coco import generate_coco_instances

    workers = args.workers or default_workers()
    w, h = (int(v) for v in args.size.lower().split("x"))
    work = Path(tempfile.mkdtemp(prefix="segdata-coco-mem-"))
    data = args.data or work / "src"
    marker = data / "segdata-benchmark.json"
    params = {
        "images": args.images,
        "annotations": args.annotations,
        "size": [h, w],
        "image_files": not args.no_image_files,
    }
    if not marker.is_file() or json.loads(marker.read_text()) != params:
        shutil.rmtree(data, ignore_errors=True)
        t0 = time.perf_counter()
        generate_coco_instances(
            data, args.images, args.annotations, image_size=(h, w), image_files=not args.no_image_files
        )
        marker.write_text(json.dumps(params))
        print(
            f"generated {args.images} images, {args.annotations} annotations in {time.perf_counter() - t0:.0f} s",
            file=sys.stderr,
        )
    json_path = data / "annotations" / "instances_train2017.json"
    out = work / "unified"
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", str(data), str(out), str(workers)]
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join([str(Path(__file__).resolve().parents[1]), os.environ.get("PYTHONPATH", "")]),
    )
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env)
    with TreeMemory(proc.pid) as mem:
        stdout, _ = proc.communicate()
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        print(f"conversion failed (exit {proc.returncode})", file=sys.stderr)
        return 2
    child = json.loads(stdout.strip().splitlines()[-1])
    figures = {
        "json_mib": round(json_path.stat().st_size / 2**20, 1),
        "images": child["images"],
        "annotations": child["segments"],
        "image_size": f"{w}x{h}",
        "workers": workers,
        "processes_seen": mem.peak_processes,
        "listing_seconds": child["listing_seconds"],
        "convert_seconds": child["seconds"],
        "wall_seconds": round(wall, 1),
        "peak_rss_tree_mib": round(mem.peak_rss / 1024, 1),
        "peak_pss_tree_mib": round(mem.peak_pss / 1024, 1),
        "peak_rss_main_mib": round(child["peak_rss_main_kib"] / 1024, 1),
        "budget_mib": round(args.budget_gib * 1024),
        "problems": child["problems"],
    }
    shutil.rmtree(work, ignore_errors=True)  # the output, and the source unless --data kept it elsewhere
    print_figures(figures, args.json, width=22)
    if not args.json:
        verdict = "within" if figures["peak_rss_tree_mib"] <= figures["budget_mib"] else "OVER"
        print(
            f"\npeak memory of the process tree: {figures['peak_rss_tree_mib']:.0f} MiB RSS "
            f"({figures['peak_pss_tree_mib']:.0f} MiB PSS), {verdict} the {args.budget_gib:g} GiB budget"
        )
    return 0 if figures["peak_rss_tree_mib"] <= figures["budget_mib"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
