"""The tail, measured: what repeat-factor sampling and a class-balanced loss do to the rare classes.

Generates a learnable long-tail dataset (the ADE20K 2021 layout, classes drawn by a power law,
each class its own colour statistics), converts it, then trains the compact baseline
(``deeplab-small``) from scratch with the same budget (iterations x batch) in three settings:

- ``uniform``: every training image once an epoch;
- ``repeat-factor``: LVIS repeat factors ``r(c) = max(1, sqrt(t / f(c)))`` (``--repeat-threshold t``);
- ``repeat-factor + class-balanced``: the same sampler and the cross-entropy weighted by the
  effective number of training images holding each class (Cui et al. 2019, ``beta``).

Each over ``--seeds`` seeds; prints the val mIoU per LVIS bucket (rare: 1-10 training images,
common: 11-100, frequent: more) as mean and standard deviation over seeds, and how much of the
training stream each sampler gives to images holding a rare class (the sampler's effect on what
the network sees, which decides whether it can help at all).

    python benchmarks/tail.py                 # ~10 minutes on 2 busy cores
    python benchmarks/tail.py --small         # seconds: a smoke run (tiny set, few iterations)
    python benchmarks/tail.py --json out.json --data /tmp/tail-data   # keep (and reuse) the data
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SETTINGS = (
    ("uniform", "uniform", "ce"),
    ("repeat-factor", "repeat-factor", "ce"),
    ("repeat-factor + class-balanced", "repeat-factor", "class-balanced"),
)
BUCKETS = ("rare", "common", "frequent")


def make_dataset(out: Path, images: int, classes: int, size: tuple[int, int], seed: int) -> Path:
    """Generate and convert the long-tail set; returns the unified dataset's folder."""
    from segdata.convert import convert
    from segdata.converters import ade20k

    source = out / "source"
    try:  # the learnable generator (segdata synthesize ade20k), when this segdata has it
        from segdata.synthetic import synthesize_ade20k
    except ImportError:
        synthesize_ade20k = None
    if synthesize_ade20k is not None:
        release = synthesize_ade20k(source, images, n_classes=classes, image_size=size, seed=seed, workers=1).release
    else:
        from segdata.synthetic import generate_ade20k_2021

        release = generate_ade20k_2021(
            source,
            images,
            image_size=size,
            n_classes=classes,
            zipf_exponent=1.7,
            parts=False,
            val_fraction=0.2,
            seed=seed,
        )
    unified = out / "unified"
    convert(ade20k, release, unified)
    return unified


def describe(unified: Path, threshold: float) -> dict:
    """Bucket sizes and the share of the sample stream that holds a rare class, per sampler."""
    import pandas as pd

    from segdata.analyses.longtail import assign_buckets
    from segdata.format import Dataset
    from segdata.torch.samplers import class_counts, class_presence, repeat_factors

    ds = Dataset(unified)
    train = class_counts(ds, "train", by="images")
    val = class_counts(ds, "val", by="images")
    buckets = assign_buckets(pd.DataFrame({"train_images": train})).to_numpy()
    presence = class_presence(ds, "train")
    factors = repeat_factors(ds, "train", threshold=threshold)
    rare_ids = np.flatnonzero(buckets == "rare")
    rare_rows = np.isin(presence.train_id, rare_ids)
    holds_rare = np.zeros(len(factors), dtype=bool)
    holds_rare[presence.image_index[rare_rows]] = True
    pixels = presence.pixels.astype(np.float64)
    weighted = pixels * factors[presence.image_index]
    in_rare_images = holds_rare[presence.image_index]
    return {
        "train_images": len(factors),
        "val_images": int((ds.images["split"] == "val").sum()),
        "classes": {b: int((buckets == b).sum()) for b in (*BUCKETS, "absent")},
        "rare_classes_in_val": int(((buckets == "rare") & (val > 0)).sum()),
        "rare_image_share": {
            "uniform": float(holds_rare.mean()),
            "repeat-factor": float(factors[holds_rare].sum() / factors.sum()),
        },
        # what the loss sees: the rare classes' share of the labelled pixels of each stream, and
        # its limit under any repeat factors: their share inside the images that hold them
        "rare_pixel_share": {
            "uniform": float(pixels[rare_rows].sum() / pixels.sum()),
            "repeat-factor": float(weighted[rare_rows].sum() / weighted.sum()),
            "limit": float(pixels[rare_rows].sum() / max(1.0, pixels[in_rare_images].sum())),
        },
        "mean_repeat_factor": float(factors.mean()),
        "max_repeat_factor": float(factors.max()),
    }


def run(args) -> dict:
    from segdata.torch.train import train

    work = Path(tempfile.mkdtemp(prefix="segdata-tail-"))
    try:
        # with --data the generated source (the images) is kept beside the unified dataset, whose
        # manifest points at it
        root = Path(args.data) if args.data else work
        unified = root / "unified"
        if not (unified / "segdata.json").is_file():
            if root.exists() and any(root.iterdir()):
                shutil.rmtree(root / "source", ignore_errors=True)
            unified = make_dataset(root, args.images, args.classes, (args.size, args.size), args.data_seed)
        info = describe(unified, args.repeat_threshold)
        print(
            f"data: {info['train_images']} train / {info['val_images']} val images, classes by bucket "
            f"{info['classes']}, rare classes in val {info['rare_classes_in_val']}; images holding a rare class: "
            f"{info['rare_image_share']['uniform']:.1%} of the uniform stream, "
            f"{info['rare_image_share']['repeat-factor']:.1%} of the repeat-factor stream "
            f"(t={args.repeat_threshold}, mean r {info['mean_repeat_factor']:.2f}, max {info['max_repeat_factor']:.2f}); "
            f"rare classes' share of the labelled pixels: {info['rare_pixel_share']['uniform']:.2%} uniform, "
            f"{info['rare_pixel_share']['repeat-factor']:.2%} repeat-factor, at most "
            f"{info['rare_pixel_share']['limit']:.2%} with any repeat factors (their share in the images holding them)",
            flush=True,
        )
        rows = []
        settings = [row for row in SETTINGS if not args.only or row[0] in args.only.split(",")]
        for name, sampler, loss in settings:
            for seed in range(args.first_seed, args.first_seed + args.seeds):
                start, cpu = time.perf_counter(), time.process_time()
                result = train(
                    unified,
                    work / f"run-{sampler}-{loss}-{seed}",
                    model="deeplab-small",
                    arch_args={"width": args.width, "aspp_channels": 2 * args.width, "output_stride": 8},
                    sampler=sampler,
                    loss=loss,
                    iters=args.iters,
                    batch_size=args.batch_size,
                    crop=args.crop,
                    lr=args.lr,
                    seed=seed,
                    workers=args.workers,
                    scale=(0.75, 1.5),
                    repeat_threshold=args.repeat_threshold,
                    cb_beta=args.beta,
                )
                by = {b["name"]: b["miou"] for b in result.buckets or []}
                rows.append(
                    {
                        "setting": name,
                        "seed": seed,
                        "miou": result.miou,
                        **by,
                        "loss_last": result.loss_last,
                        "cpu_seconds": time.process_time() - cpu,
                    }
                )
                print(
                    f"  {name:32s} seed {seed}: mIoU {result.miou:.3f}  "
                    + "  ".join(f"{b} {by.get(b) if by.get(b) is None else format(by[b], '.3f')}" for b in BUCKETS)
                    + f"  loss {result.loss_first:.3f}->{result.loss_last:.3f}  {time.perf_counter() - start:.0f} s",
                    flush=True,
                )
        summary = {}
        for name, _, _ in settings:
            mine = [r for r in rows if r["setting"] == name]
            summary[name] = {}
            for key in ("miou", *BUCKETS):
                values = np.array([r.get(key) for r in mine if r.get(key) is not None], dtype=np.float64)
                summary[name][key] = {
                    "mean": float(values.mean()) if len(values) else None,
                    "std": float(values.std(ddof=1)) if len(values) > 1 else None,
                    "n": len(values),
                }
        return {"settings": vars(args), "data": info, "runs": rows, "summary": summary}
    finally:
        shutil.rmtree(work, ignore_errors=True)


def print_summary(report: dict) -> None:
    def cell(s):
        if s["mean"] is None:
            return "-"
        return f"{s['mean']:.3f} ± {s['std']:.3f}" if s["std"] is not None else f"{s['mean']:.3f}"

    print(f"\nval mIoU, mean ± sd over {report['settings']['seeds']} seeds:")
    print(f"| {'setting':32s} | mIoU | " + " | ".join(BUCKETS) + " |")
    print("|---|---|" + "---|" * len(BUCKETS))
    for name, s in report["summary"].items():
        print(f"| {name:32s} | {cell(s['miou'])} | " + " | ".join(cell(s[b]) for b in BUCKETS) + " |")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", type=int, default=400, help="generated images (train + val)")
    p.add_argument("--classes", type=int, default=30)
    p.add_argument("--size", type=int, default=64, help="image side, pixels")
    p.add_argument("--iters", type=int, default=300)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--crop", type=int, default=64)
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--width", type=int, default=16, help="deeplab-small width (ASPP: twice it)")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--first-seed", type=int, default=0, help="seeds first-seed .. first-seed + seeds - 1")
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--repeat-threshold", type=float, default=0.1)
    p.add_argument("--beta", type=float, default=0.99, help="class-balanced loss: effective-number beta over images")
    p.add_argument("--data-seed", type=int, default=0)
    p.add_argument("--data", help="keep (or reuse) the generated source and unified dataset in this folder")
    p.add_argument("--json", help="also write the report to this file")
    p.add_argument("--only", help="comma-separated settings to run (default all): uniform,repeat-factor,...")
    p.add_argument("--threads", type=int, default=1, help="torch threads (1: on a busy machine more only spin)")
    p.add_argument("--small", action="store_true", help="a smoke run in seconds")
    args = p.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    if args.small:
        args.images, args.classes, args.size, args.iters, args.batch_size, args.crop = 40, 8, 48, 4, 2, 32
        args.seeds, args.width = 2, 8
    start, cpu = time.perf_counter(), time.process_time()
    report = run(args)
    report["seconds"] = round(time.perf_counter() - start, 1)
    report["cpu_seconds"] = round(time.process_time() - cpu, 1)
    print_summary(report)
    print(f"\n{report['seconds']:.0f} s in all, {report['cpu_seconds']:.0f} s of CPU")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
