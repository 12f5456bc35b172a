"""Long-tail and object-size analyses at ADE20K scale, and what Datumaro's `stats` accounts for.

1. Speed: generates an ADE20K-like dataset (2021 layout, power-law classes, small masks; default
   25,000 images), converts it once, then times ``segdata analyze longtail`` and ``segdata analyze
   small-objects`` end to end (a fresh process each, as a user runs them), and Datumaro's
   ``stats`` (``compute_ann_statistics`` after importing the source layout) on the same files.
2. Linearity without instances: a SceneParsing-like dataset (ADEChallengeData2016 layout, class
   regions only, so ``analyze small-objects`` decodes every mask for its connected components;
   default 25,000 images) converted at 5,000 images and at all of them; ``analyze small-objects``
   is timed on both and the seconds per 1,000 images printed: equal when the analysis is linear
   (it was quadratic when every task carried every image's lookup table).
3. Accuracy: on generated Cityscapes and VOC data, the share of annotated pixels each tool's
   statistics account for. Datumaro counts no pixel of Cityscapes' classes with instances and
   none of VOC's background; segdata accounts for every pixel (labelled + ignore + unlabeled =
   all), checked here against an independent decode of the label PNGs.

    pip install -e ".[bench]"
    python benchmarks/analyze.py                       # 25,000 images
    python benchmarks/analyze.py --images 2000 --datumaro-images 500
    python benchmarks/analyze.py --skip-speed --skip-accuracy      # the linearity check alone
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))

from datumaro_runner import datumaro_available, datumaro_root, ensure_cityscapes_image_dirs

import segdata
from segdata.analyses.longtail import pixel_accounting
from segdata.convert import convert
from segdata.runner import default_workers


def _run(args: list[str]) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "segdata", *args], capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"segdata {' '.join(args)} failed:\n{proc.stderr}")
    return seconds


def datumaro_stats(path: Path, fmt: str) -> dict:
    """Import ``path`` with Datumaro and run its annotation statistics; returns the pixel total
    its ``segments/pixel distribution`` accounts for, the pixels of the images it loaded (Datumaro
    loads an image once per split list it is in, e.g. VOC's train and trainval), the image count
    and the seconds taken."""
    import datumaro as dm
    from datumaro.components.operations import compute_ann_statistics

    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dataset = dm.Dataset.import_from(str(datumaro_root(path, fmt)), fmt)
        stats = compute_ann_statistics(dataset)
    seconds = time.perf_counter() - t0
    pixels = sum(v[0] for v in stats["annotations"]["segments"]["pixel distribution"].values())
    image_pixels = 0
    for item in dataset:
        mask = next((a for a in item.annotations if hasattr(a, "image")), None)
        size = item.media.size if item.media is not None and item.media.has_size else None
        if size is None and mask is not None:
            size = mask.image.shape[:2]
        image_pixels += int(size[0]) * int(size[1]) if size else 0
    return {"images": stats["images count"], "pixels": int(pixels), "image_pixels": image_pixels, "seconds": seconds}


def _subset(release: Path, n: int, dest: Path) -> Path:
    """A copy of the first ``n`` images of an ADE20K 2021 release (all their files)."""
    for seg in sorted(release.rglob("*_seg.png"))[:n]:
        stem = seg.name[: -len("_seg.png")]
        rel = seg.parent.relative_to(release)
        (dest / rel).mkdir(parents=True, exist_ok=True)
        for f in seg.parent.glob(stem + "*"):
            (shutil.copytree if f.is_dir() else shutil.copyfile)(f, dest / rel / f.name)
    return dest


def speed(args, work: Path) -> dict:
    from segdata.converters import ade20k
    from segdata.synthetic import generate_ade20k_2021

    data = args.data or work / "ade"
    release = data / "ADE20K_2021_17_01"
    if not release.is_dir() or len(list(release.rglob("*_seg.png"))) != args.images:
        shutil.rmtree(data, ignore_errors=True)
        t0 = time.perf_counter()
        release = generate_ade20k_2021(
            data,
            args.images,
            image_size=(args.size, args.size * 4 // 3),
            n_classes=3000,
            zipf_exponent=1.0,
            parts=False,
            seed=0,
            workers=default_workers(),
        )
        print(f"generated {args.images} images in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    unified = data / "unified"
    if not (unified / "segdata.json").is_file():
        t0 = time.perf_counter()
        convert(ade20k, release, unified, workers=default_workers(), overwrite=True)
        print(f"converted in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    ds = segdata.open(unified)
    out = {
        "images": len(ds),
        "segments": len(ds.segments),
        "classes": len(ds.classes),
        "longtail_seconds": min(_run(["analyze", "longtail", str(unified), "--json"]) for _ in range(args.repeat)),
        "small_objects_seconds": min(
            _run(["analyze", "small-objects", str(unified), "--json"]) for _ in range(args.repeat)
        ),
    }
    if datumaro_available() and args.datumaro_images:
        n = min(args.datumaro_images, args.images)
        src = release if n == args.images else _subset(release, n, work / "dm-ade" / "ADE20K_2021_17_01")
        dm = datumaro_stats(src, "ade20k2020")
        out.update(
            datumaro_stats_images=dm["images"],
            datumaro_stats_seconds=round(dm["seconds"], 2),
            datumaro_stats_seconds_per_image=round(dm["seconds"] / max(1, dm["images"]), 4),
            datumaro_stats_seconds_extrapolated=round(dm["seconds"] / max(1, dm["images"]) * args.images, 1),
        )
    return out


def scaling(args, work: Path) -> dict:
    """Seconds per 1,000 images of ``analyze small-objects`` on class-region data, at
    ``--scaling-images`` / 5 and at ``--scaling-images`` images."""
    from segdata.converters import ade20k
    from segdata.synthetic import generate_ade20k_challenge

    data = (args.data / "scene-parsing") if args.data else work / "scene-parsing"
    root = data / "ADEChallengeData2016"
    n_all = args.scaling_images
    if not root.is_dir() or len(list((root / "annotations").rglob("*.png"))) != n_all:
        shutil.rmtree(data, ignore_errors=True)
        t0 = time.perf_counter()
        root = generate_ade20k_challenge(
            data, n_all, image_size=((args.size, args.size * 4 // 3),) * 2, seed=0, workers=default_workers()
        )
        print(f"generated {n_all} SceneParsing images in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    out = {}
    for n in (n_all // 5, n_all):
        unified = data / f"unified-{n}"
        if not (unified / "segdata.json").is_file():
            convert(ade20k, root, unified, limit=n, workers=default_workers(), overwrite=True)
        seconds = min(_run(["analyze", "small-objects", str(unified), "--json"]) for _ in range(args.repeat))
        out[f"small_objects_seconds_{n}"] = round(seconds, 3)
        out[f"small_objects_seconds_per_1000_at_{n}"] = round(seconds / n * 1000, 4)
    small, large = (out[f"small_objects_seconds_per_1000_at_{n}"] for n in (n_all // 5, n_all))
    out["per_image_cost_ratio_large_to_small"] = round(large / small, 3)
    print(
        f"analyze small-objects on class regions: {small:.3f} s per 1,000 images at {n_all // 5:,}, "
        f"{large:.3f} s at {n_all:,} (ratio {large / small:.2f}; 1.00 is linear)",
        file=sys.stderr,
    )
    return out


def _label_counts(pngs) -> np.ndarray:
    """Pixels per label value over every label map, decoded independently (Pillow + bincount)."""
    counts = np.zeros(256, dtype=np.int64)
    for p in pngs:
        counts += np.bincount(np.asarray(Image.open(p)).ravel(), minlength=256)
    return counts


def accuracy(args, work: Path) -> dict:
    from segdata.converters import cityscapes, voc
    from segdata.synthetic.cityscapes import generate_cityscapes
    from segdata.synthetic.voc import generate_voc

    out = {}
    cs_root = generate_cityscapes(work / "cs", args.accuracy_images, seed=0, workers=default_workers())
    voc_root = generate_voc(work / "voc", args.accuracy_images, seed=0, workers=default_workers())
    for name, module, root, pngs, fmt in (
        ("cityscapes", cityscapes, cs_root, sorted(Path(cs_root).rglob("*_gtFine_labelIds.png")), "cityscapes"),
        ("voc", voc, voc_root, sorted(Path(voc_root).rglob("SegmentationClass/*.png")), "voc_segmentation"),
    ):
        counts = _label_counts(pngs)
        total = int(counts.sum())
        convert(module, root, work / f"{name}-u", workers=default_workers())
        ds = segdata.open(work / f"{name}-u")
        acc = pixel_accounting(ds)
        # segdata's per-class pixels, mapped back to the source's label values, must be the counts
        # of the label maps: every pixel accounted for, in its own class
        seg = ds.read_segments(["layer", "class_id", "area"])
        per_class = seg[seg.layer == "objects"].groupby("class_id")["area"].sum()
        source = dict(zip(ds.classes.class_id, ds.classes.source_id))
        mine = np.zeros(256, dtype=np.int64)
        for class_id, pixels in per_class.items():
            mine[source[class_id]] += pixels
        assert np.array_equal(mine, counts), f"{name}: per-class pixels differ from the label maps"
        row = {
            "pixels": total,
            "segdata_share": (acc["labelled"] + acc["ignore"]) / total,
            "segdata_labelled_share": acc["labelled"] / total,
            "segdata_ignore_share": acc["ignore"] / total,
            "segdata_unlabeled_share": acc["unlabeled"] / total,
        }
        if datumaro_available():
            if fmt == "cityscapes":
                ensure_cityscapes_image_dirs(root)  # Datumaro needs leftImg8bit/<split> (generated data)
            dm = datumaro_stats(Path(root), fmt)
            row["datumaro_share"] = dm["pixels"] / dm["image_pixels"]
        out[name] = row
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=25000)
    ap.add_argument("--size", type=int, default=48, help="image height in pixels (width 4/3 of it)")
    ap.add_argument("--data", type=Path, help="keep the generated ADE data here (reused when present)")
    ap.add_argument(
        "--datumaro-images",
        type=int,
        default=1000,
        help="images Datumaro's stats runs on (its time per image is printed and extrapolated); 0: skip",
    )
    ap.add_argument("--accuracy-images", type=int, default=50)
    ap.add_argument(
        "--scaling-images",
        type=int,
        default=25000,
        help="SceneParsing-like images of the linearity check (also timed at a fifth of it)",
    )
    ap.add_argument("--repeat", type=int, default=3, help="runs of each timed command (the fastest is kept)")
    ap.add_argument("--skip-speed", action="store_true")
    ap.add_argument("--skip-scaling", action="store_true")
    ap.add_argument("--skip-accuracy", action="store_true")
    args = ap.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="segdata-analyze-"))
    figures = {}
    try:
        if not args.skip_speed:
            figures["speed"] = speed(args, work)
        if not args.skip_scaling:
            figures["scaling"] = scaling(args, work)
        if not args.skip_accuracy:
            figures["accuracy"] = accuracy(args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(figures, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
