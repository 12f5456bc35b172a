"""Annotation consistency at Cityscapes size, against the floor of merely decoding the masks.

Generates a synthetic ADE20K consistency set (default 500 images of 2048x1024, no parts: each
image annotated twice, the second a calibrated re-annotation with known per-edit pixel counts),
converts it once into the unified format, then in one run and on the same files times

- ``segdata analyze consistency`` as a library call (:func:`segdata.analyses.consistency.compare`
  with its defaults: boundary band K = 3, 1,000 bootstrap resamples; all cores), end to end:
  reading the tables, the per-image work in the process pool, the reduce and the bootstrap;
- the decode floor: reading and decoding the two masks of every pair with the fastest PNG decoder
  available, in the same process pool (same workers, same batches), doing nothing else. Two are
  timed: pyspng (libspng, the fastest third-party decoder) and segdata's own (libdeflate + the
  ``segdata._png`` extension); the floor is the faster of the two. A third time, for comparison
  only: inflating the rows and using them in place, as the analysis itself reads segdata's
  unfiltered segment maps (no decoder can do less on these files; the ratio to it is printed too).

Runs alternate (floor, analysis, floor, ...) after a warm-up of each; medians are reported with
the ratio analysis / floor (target: within 2x), and the median of the ratios of adjacent runs
(robust to a machine whose speed drifts during the run). Then the calibration check of the demo: the
agreement and breakdown measured on the generated re-annotation against the published ADE20K
figures (82.4% agreement; 5.7 / 6.0 / 5.9% disagreement) and against the generator's exact
per-edit counts.

    python benchmarks/consistency.py                    # 500 pairs, all cores
    python benchmarks/consistency.py --images 100 --workers 2 --profile
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import segdata
from segdata.analyses import consistency
from segdata.convert import convert
from segdata.format import mask_relpath
from segdata.runner import default_workers, parallel_map


def _decode_pair(decoder: str, paths: tuple[str, str]) -> int:
    """Read and decode both masks with ``decoder``: "pyspng"; "segdata" (segdata.maskio's own
    decoder, libdeflate + the segdata._png extension); or "inflate only" (what analyze
    consistency itself does: the rows inflated and used in place, no unfiltering copy, which
    only a file with unfiltered rows allows: not a PNG decoder, reported for comparison)."""
    if decoder == "pyspng":
        import pyspng

        decode = pyspng.load
    elif decoder == "inflate only":
        from segdata.maskio import read_segment_map

        return sum(read_segment_map(p, view=True).shape[0] for p in paths)
    else:
        from segdata.maskio import decode_png as decode
    total = 0
    for p in paths:
        with open(p, "rb") as f:
            arr = decode(f.read())
        total += arr.shape[0]
    return total


def decode_floor(pairs: list[tuple[str, str]], workers: int, batch_size: int, decoder: str) -> float:
    t0 = time.perf_counter()
    for _ in parallel_map(partial(_decode_pair, decoder), pairs, workers=workers, batch_size=batch_size):
        pass
    return time.perf_counter() - t0


def analysis(ds, workers: int, bootstrap: int, batch_size: int):
    t0 = time.perf_counter()
    result = consistency.compare(ds, workers=workers, bootstrap=bootstrap, batch_size=batch_size)
    return time.perf_counter() - t0, result


def profile_one(ds, pairs: list[tuple[str, str]]) -> None:
    """cProfile of the per-image work in this process (what each worker does)."""
    import cProfile
    import pstats

    result = consistency.compare(ds, workers=1, bootstrap=0)
    luts = result.luts
    items = [(Path(a).stem, (a, b), luts[Path(a).stem][:2]) for a, b in pairs[:50]]
    from segdata.analyses.consistency.comparison import _count_task as fn

    prof = cProfile.Profile()
    prof.enable()
    for item in items:
        fn(consistency.DEFAULT_BOUNDARY_PX, None, item)
    prof.disable()
    pstats.Stats(prof).sort_stats("tottime").print_stats(18)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=500)
    ap.add_argument("--workers", type=int, default=default_workers())
    ap.add_argument("--repeat", type=int, default=5, help="timed runs of each (median reported)")
    ap.add_argument("--bootstrap", type=int, default=1000)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--work", type=Path, help="directory for the generated data (default: a temporary one)")
    ap.add_argument("--keep", action="store_true", help="keep the generated data")
    ap.add_argument("--profile", action="store_true", help="also print a cProfile of the per-image work")
    ap.add_argument("--json", action="store_true", help="print the figures as JSON at the end")
    args = ap.parse_args(argv)

    from segdata.converters import ade20k
    from segdata.synthetic import generate_ade20k_consistency

    work = args.work or Path(tempfile.mkdtemp(prefix="segdata-consistency-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        src, dst = work / "source", work / "unified"
        t0 = time.perf_counter()
        shutil.rmtree(src, ignore_errors=True)
        summary = generate_ade20k_consistency(
            src, args.images, image_size=(1024, 2048), parts=False, workers=args.workers
        )
        t_gen = time.perf_counter() - t0
        t0 = time.perf_counter()
        convert(ade20k, summary.path, dst, workers=args.workers, overwrite=True, name="consistency-bench")
        t_conv = time.perf_counter() - t0
        print(
            f"generated {args.images} image pairs of 2048x1024 in {t_gen:.1f} s, converted in {t_conv:.1f} s ({work})"
        )
        ds = segdata.open(dst)
        split = dict(zip(ds.images["image_id"], ds.images["split"]))
        pairs = [
            (str(dst / mask_relpath("objects", split[i], i)), str(dst / mask_relpath("reannotation", split[i], i)))
            for i in ds.images["image_id"]
        ]
        mb = sum(Path(p).stat().st_size for pair in pairs for p in pair) / 2**20
        print(f"masks: {len(pairs)} pairs, {mb:.1f} MiB of PNG; workers: {args.workers}; batch size {args.batch_size}")

        # warm-up (page cache, imports in the workers)
        decoders = ["pyspng", "segdata", "inflate only"]
        for d in decoders:
            decode_floor(pairs, args.workers, args.batch_size, d)
        analysis(segdata.open(dst), args.workers, args.bootstrap, args.batch_size)
        floors: dict[str, list[float]] = {d: [] for d in decoders}
        runs = []
        result = None
        for _ in range(args.repeat):
            for d in decoders:
                floors[d].append(decode_floor(pairs, args.workers, args.batch_size, d))
            seconds, result = analysis(segdata.open(dst), args.workers, args.bootstrap, args.batch_size)
            runs.append(seconds)
        medians = {d: statistics.median(v) for d, v in floors.items()}
        fastest = min(("pyspng", "segdata"), key=medians.get)  # the PNG decoders
        floor, run = medians[fastest], statistics.median(runs)
        paired = statistics.median(r / f for f, r in zip(floors[fastest], runs))
        n = len(pairs)
        print()
        print("| | seconds (median) | ms per pair | pairs/s |")
        print("|---|---|---|---|")
        for d in decoders:
            mark = " (the floor)" if d == fastest else ""
            what = (
                "read + inflate both masks, rows in place (not a PNG decoder)"
                if d == "inflate only"
                else f"read + {d} both masks"
            )
            print(
                f"| decode: {what}, {args.workers} processes{mark} | {medians[d]:.3f} | "
                f"{medians[d] / n * 1000:.2f} | {n / medians[d]:.0f} |"
            )
        print(
            f"| segdata analyze consistency (K = 3, {args.bootstrap} bootstrap), {args.workers} processes | "
            f"{run:.3f} | {run / n * 1000:.2f} | {n / run:.0f} |"
        )
        print(
            f"| ratio to the floor | **{run / floor:.2f}x** (median of the paired runs: {paired:.2f}x) | | target: within 2x |"
        )
        print(f"| ratio to pyspng decoding | {run / medians['pyspng']:.2f}x | | |")
        print(f"| ratio to inflating the rows only | {run / medians['inflate only']:.2f}x | | |")
        print(
            f"all runs: floors { ({d: [round(x, 3) for x in v] for d, v in floors.items()}) }, analysis {[round(x, 3) for x in runs]}"
        )

        assert result is not None
        f = result.figures
        b = result.breakdown
        ref = consistency.ADE20K_REFERENCE
        gen = summary.fractions()
        print()
        print("calibration (generated re-annotation against the published ADE20K figures):")
        print("| | measured | generator (exact edits) | published |")
        print("|---|---|---|---|")
        print(
            f"| pixel agreement | {f['pixel_agreement']:.2%} | {summary.agreement:.2%} | {ref['pixel_agreement']:.1%} |"
        )
        for c in consistency.CATEGORIES:
            print(f"| {c.replace('_', ' ')} | {b[c]:.2%} | {gen[c]:.2%} | {ref[c]:.1%} |")
        ci = result.ci

        def interval(key, fmt):  # null where BCa is undefined (docs/consistency.md, "Confidence intervals")
            low, high = ci.get(key) or (None, None)
            return "undefined" if low is None else f"{low:{fmt}}..{high:{fmt}}"

        print(
            f"95% {ci.get('method', '').upper()} CI over images: agreement {interval('pixel_agreement', '.2%')}, "
            f"mIoU {f['miou']:.3f} ({interval('miou', '.3f')}); band (K = 3) agreement "
            f"{result.boundary['band']['agreement']:.2%} on {result.boundary['band']['share']:.1%} of pixels, "
            f"interior {result.boundary['interior']['agreement']:.2%}"
        )
        exact = {c: int(result.per_image[c].sum()) for c in consistency.CATEGORIES}
        want = {
            "segmentation_quality": summary.segmentation_quality,
            "naming": summary.naming,
            "quantity": summary.quantity,
        }
        print(f"breakdown pixels: measured {exact}, generator {want}")
        if args.profile:
            profile_one(ds, pairs)
        if args.json:
            print(
                json.dumps(
                    {
                        "pairs": n,
                        "workers": args.workers,
                        "floor_decoder": fastest,
                        "floor_s": floor,
                        "decode_s": medians,
                        "analysis_s": run,
                        "ratio": run / floor,
                        "paired_ratio": paired,
                        "floors": floors,
                        "runs": runs,
                        "agreement": f["pixel_agreement"],
                        "breakdown": {c: b[c] for c in consistency.CATEGORIES},
                        "generator": {"agreement": summary.agreement, **gen},
                    }
                )
            )
    finally:
        if not args.keep and args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
