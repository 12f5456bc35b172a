"""Convert a generated ADE20K-2021-layout dataset with segdata and with Datumaro, in one run.

Prints images per second of both, their ratio, and segdata's peak memory (resident set of the
whole process tree, this process and its workers, sampled every 10 ms; and of this process alone).

    pip install -e ".[bench]"                      # Datumaro: benchmark-only
    python benchmarks/convert_ade20k.py            # 200 images of 2048x1536
    python benchmarks/convert_ade20k.py --images 2000 --no-datumaro   # memory at 10x the size

Datumaro's ``ade20k2020`` importer is pointed at ``ADE20K_2021_17_01/images/ADE`` (it treats the
folders below its root as subsets) and exports to Datumaro's own format, which decodes every mask.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import TreeMemory, print_figures, ratio_line
from datumaro_runner import datumaro_available, datumaro_convert

from segdata.convert import convert
from segdata.converters import ade20k
from segdata.runner import default_workers
from segdata.synthetic import generate_ade20k_2021


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=200)
    ap.add_argument("--height", type=int, default=1536)
    ap.add_argument("--width", type=int, default=2048)
    ap.add_argument("--workers", type=int, default=default_workers(), help="segdata workers (default: all cores)")
    ap.add_argument("--data", type=Path, help="where to generate the source data (default: a temporary directory)")
    ap.add_argument("--no-datumaro", action="store_true", help="time segdata only")
    ap.add_argument(
        "--datumaro-images", type=int, help="time Datumaro on the first N images only (its rate is per image)"
    )
    ap.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = ap.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="segdata-bench-"))
    data = args.data or work / "src"
    release = data / "ADE20K_2021_17_01"
    if not release.is_dir() or len(list(release.rglob("*_seg.png"))) != args.images:
        shutil.rmtree(data, ignore_errors=True)
        t0 = time.perf_counter()
        release = generate_ade20k_2021(
            data, args.images, image_size=(args.height, args.width), seed=0, workers=default_workers()
        )
        print(
            f"generated {args.images} images of {args.width}x{args.height} in {time.perf_counter() - t0:.0f} s",
            file=sys.stderr,
        )

    out = work / "segdata-out"
    with TreeMemory(os.getpid(), interval=0.01) as mem:
        t0 = time.perf_counter()
        report = convert(ade20k, release, out, workers=args.workers)
        seg_seconds = time.perf_counter() - t0
    figures = {
        "images": report.images,
        "image_size": f"{args.width}x{args.height}",
        "segments": report.segments,
        "segdata_workers": args.workers,
        "segdata_seconds": round(seg_seconds, 2),
        "segdata_images_per_second": round(report.images / seg_seconds, 2),
        "segdata_peak_rss_mib_tree": round(mem.peak_rss / 1024, 1),
        "segdata_peak_rss_mib_main": round(mem.peak_rss_main / 1024, 1),
    }
    shutil.rmtree(out, ignore_errors=True)

    if not args.no_datumaro:
        version = datumaro_available()
        if version is None:
            print("Datumaro is not installed (pip install -e '.[bench]'); timing segdata only", file=sys.stderr)
        else:
            src = release
            n = args.images
            if args.datumaro_images and args.datumaro_images < args.images:
                # a copy holding the first N images, so that both tools see the same files
                src = work / "dm-src" / "ADE20K_2021_17_01"
                n = args.datumaro_images
                for seg in sorted(release.rglob("*_seg.png"))[:n]:
                    stem = seg.name[: -len("_seg.png")]
                    rel = seg.parent.relative_to(release)
                    (src / rel).mkdir(parents=True, exist_ok=True)
                    for f in seg.parent.glob(stem + "*"):
                        dest = src / rel / f.name
                        if f.is_dir():
                            shutil.copytree(f, dest)
                        else:
                            shutil.copyfile(f, dest)
            dm = datumaro_convert(src, work / "dm-out", fmt="ade20k2020")
            figures.update(
                datumaro_version=version,
                datumaro_images=dm["items"],
                datumaro_seconds=round(dm["seconds"], 2),
                datumaro_images_per_second=round(dm["items"] / dm["seconds"], 3),
            )
            figures["ratio"] = round(figures["segdata_images_per_second"] / figures["datumaro_images_per_second"], 1)
    shutil.rmtree(work, ignore_errors=True)

    print_figures(figures, args.json, width=32)
    if "ratio" in figures and not args.json:
        print("\n" + ratio_line(figures, args.workers))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
