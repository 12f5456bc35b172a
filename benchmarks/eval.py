"""``segdata eval`` at Cityscapes size, against the official evaluation, torchmetrics, and the floor
of merely decoding the files.

Generates a Cityscapes gtFine set (:func:`segdata.synthetic.cityscapes.generate_cityscapes`,
2048x1024, realistic street scenes, the real files' PNG encoding), converts it, and writes one
prediction per image of the evaluated split: the ground truth with the errors a model makes
(boundaries shifted by a few pixels, a few blobs of another class, some instance interiors
replaced), a class everywhere (a model's argmax: no "no prediction" pixel), saved with Pillow as
a user would (8-bit grey PNG, Pillow's default encoder), in trainIds for segdata and torchmetrics
and in labelIds for the official tool. The split evaluated is ``train`` (the generator puts one
image in six in ``val``; ``train`` gives N pairs from about 1.2 N images). Then, on the same files:

- ``segdata eval`` as a whole process (``python -m segdata eval ... --json``), with
  ``--bootstrap 0`` and with the default 1,000 BCa resamples; all cores;
- the same as a library call (:func:`segdata.eval.evaluate`, no bootstrap), end to end from the
  PNGs: tables, the process pool, the reduce;
- the decode floor: reading and decoding both PNGs of every pair (the prediction and the unified
  mask) with segdata's own decoder (:func:`segdata.maskio.decode_png`) in the same process pool
  (same workers, same batches of 8), doing nothing else;
- cityscapesScripts 2.3.0's ``evalPixelLevelSemanticLabeling`` (pixel IoU and iIoU, as pip
  installs it: its numpy path, the Cython extension is not in the wheel) as a whole process, one
  process as the tool runs (``evaluateImgLists`` on the file lists; ``np.in1d`` shimmed to
  ``np.isin`` for NumPy >= 2.4);
- torchmetrics' ``MulticlassJaccardIndex`` (``num_classes=19, ignore_index=255``) on CPU, fed by
  Pillow (the ground truth's labelIds mapped to trainIds by a lookup table), as a whole process.

Timed runs alternate (floor, library, CLI, ...) after a warm-up; medians are printed with the
ratios (targets: at least 15x faster than cityscapesScripts, whole processes; within 1.5x of the
decode floor). The slow tools run ``--slow-repeat`` times (default 1). The figures of all three
tools are printed side by side (they must agree).

    python benchmarks/eval.py                      # 500 pairs, all cores
    python benchmarks/eval.py --pairs 50 --repeat 3 --profile
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import numpy as np

# labelId -> trainId (255: ignored) and back (cityscapesScripts labels.py; kept here so that the
# benchmark's own processes do not depend on the tool they time)
_EVALUATED = {7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9, 23: 10}
_EVALUATED.update({24: 11, 25: 12, 26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18})
TO_TRAIN = np.full(256, 255, dtype=np.uint8)
TO_LABEL = np.zeros(256, dtype=np.uint8)
for _label, _train in _EVALUATED.items():
    TO_TRAIN[_label] = _train
    TO_LABEL[_train] = _label


# --------------------------------------------------------------------------- data


def _n_images_for(pairs: int) -> int:
    """Images to generate so that ``pairs`` land in ``train`` (image i is val when i % 6 == 1)."""
    n = train = 0
    while train < pairs:
        train += n % 6 != 1
        n += 1
    return n


def _predict_one(src: str, pred: str, item: tuple[str, str, int]) -> tuple[str, str]:
    """Write image ``image_id``'s prediction (trainIds, and labelIds for the official tool)."""
    from PIL import Image
    from scipy import ndimage

    image_id, city, seed = item
    folder = Path(src) / "gtFine" / "train" / city
    labels = np.asarray(Image.open(folder / f"{image_id}_gtFine_labelIds.png"))
    instances = np.asarray(Image.open(folder / f"{image_id}_gtFine_instanceIds.png"))
    rng = np.random.default_rng(seed)
    h, w = labels.shape
    train = TO_TRAIN[np.roll(labels, (int(rng.integers(-4, 5)), int(rng.integers(-4, 5))), axis=(0, 1))]
    # ignored labelIds: the model predicts something there too (road below the horizon, else sky)
    rows = np.arange(h)[:, None] >= h // 2
    train = np.where(train == 255, np.where(rows, 0, 10), train).astype(np.uint8)
    for value in np.unique(instances[instances >= 1000]).tolist():
        if rng.random() < 0.3:
            r, c = np.nonzero(instances == value)
            box = (slice(r.min(), r.max() + 1), slice(c.min(), c.max() + 1))
            inner = ndimage.binary_erosion(instances[box] == value, iterations=3)
            train[box][inner] = rng.choice([0, 2, 8, 13])
    for _ in range(3):  # elliptic blobs of another class
        cy, cx = int(rng.integers(0, h)), int(rng.integers(0, w))
        ry, rx = int(rng.integers(10, 80)), int(rng.integers(10, 160))
        y0, y1, x0, x1 = max(cy - ry, 0), min(cy + ry + 1, h), max(cx - rx, 0), min(cx + rx + 1, w)
        yy, xx = np.ogrid[y0:y1, x0:x1]
        blob = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
        train[y0:y1, x0:x1][blob] = int(rng.integers(0, 19))
    out_train = Path(pred) / "train" / city / f"{image_id}.png"
    out_label = Path(pred) / "label" / f"{image_id}_pred.png"
    out_train.parent.mkdir(parents=True, exist_ok=True)
    out_label.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(train, mode="L").save(out_train)
    Image.fromarray(TO_LABEL[train], mode="L").save(out_label)
    return str(out_train), str(out_label)


# --------------------------------------------------------------------------- timed work


def _decode_pair(paths: tuple[str, str]) -> int:
    from segdata.maskio import decode_png

    total = 0
    for p in paths:
        with open(p, "rb") as f:
            total += decode_png(f.read()).shape[0]
    return total


#: CPU seconds (user + system, this process and its waited-for children: pool workers, whole
#: processes and their workers) of the last timed call; on a machine shared with other jobs the
#: wall time depends on what else runs, the CPU time much less
LAST_CPU = [0.0]


def _cpu() -> float:
    import resource

    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def decode_floor(pairs: list[tuple[str, str]], workers: int) -> float:
    from segdata.runner import parallel_map

    c0, t0 = _cpu(), time.perf_counter()
    for _ in parallel_map(_decode_pair, pairs, workers=workers, batch_size=8, ordered=True):
        pass
    seconds = time.perf_counter() - t0
    LAST_CPU[0] = _cpu() - c0
    return seconds


def library(unified: Path, pred: Path, workers: int):
    from segdata.eval import evaluate

    c0, t0 = _cpu(), time.perf_counter()
    result = evaluate(unified, pred, split="train", bootstrap=0, workers=workers)
    seconds = time.perf_counter() - t0
    LAST_CPU[0] = _cpu() - c0
    return seconds, result


def whole_process(cmd: list[str]) -> tuple[float, str]:
    c0, t0 = _cpu(), time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    LAST_CPU[0] = _cpu() - c0
    if done.returncode != 0:
        raise SystemExit(
            f"{' '.join(cmd[:4])} ... failed ({done.returncode}):\n{done.stdout[-2000:]}{done.stderr[-2000:]}"
        )
    return seconds, done.stdout


def segdata_cli(unified: Path, pred: Path, workers: int, bootstrap: int | None) -> tuple[float, dict]:
    cmd = [sys.executable, "-m", "segdata", "eval", str(unified), "--pred", str(pred), "--split", "train"]
    cmd += ["--workers", str(workers), "--json"]
    if bootstrap is not None:
        cmd += ["--bootstrap", str(bootstrap)]
    seconds, out = whole_process(cmd)
    return seconds, json.loads(out)


# --------------------------------------------------------------------------- the other tools (own processes)


def run_official(lists: str, export: str) -> None:
    """cityscapesScripts' evaluation in this process (called as ``--run-official``)."""
    import numpy

    if not hasattr(numpy, "in1d"):  # NumPy 2.4 removed it; cityscapesScripts 2.3.0 calls it
        numpy.in1d = numpy.isin
    import contextlib
    import io

    from cityscapesscripts.evaluation import evalPixelLevelSemanticLabeling as cs

    doc = json.loads(Path(lists).read_text())
    args = cs.args
    args.evalInstLevelScore = True
    args.evalPixelAccuracy = False
    args.quiet = True
    args.colorized = False
    args.JSONOutput = True
    args.exportFile = export
    with contextlib.redirect_stdout(io.StringIO()):
        result = cs.evaluateImgLists(doc["pred"], doc["gt"], args)
    print(json.dumps({"miou": result["averageScoreClasses"], "mean_iiou": result["averageScoreInstClasses"]}))


def run_torchmetrics(lists: str, validate: str, pairs: str) -> None:
    """torchmetrics' MulticlassJaccardIndex fed by Pillow, in this process (``--run-torchmetrics``):
    the first ``pairs`` pairs, ``validate_args`` as given (its default, True, checks every
    update's values with ``torch.unique``: most of its time here)."""
    import torch
    from PIL import Image
    from torchmetrics.classification import MulticlassJaccardIndex

    doc = json.loads(Path(lists).read_text())
    n = int(pairs)
    metric = MulticlassJaccardIndex(num_classes=19, ignore_index=255, average="macro", validate_args=validate == "1")
    for gt_path, pred_path in zip(doc["gt"][:n], doc["pred_train"][:n]):
        gt = torch.from_numpy(TO_TRAIN[np.asarray(Image.open(gt_path))].astype(np.int64))
        pred = torch.from_numpy(np.asarray(Image.open(pred_path)).astype(np.int64))
        metric.update(pred, gt)
    print(json.dumps({"miou": float(metric.compute()), "pairs": min(n, len(doc["gt"]))}))


def profile_one(unified: Path, pred: Path) -> None:
    """cProfile of segdata eval's per-image work in this process (what each worker does)."""
    import cProfile
    import pstats

    import segdata
    from segdata.eval import EvalSpace, prediction_items
    from segdata.eval.counting import count_files

    ds = segdata.open(unified)
    space = EvalSpace.build(ds, "train")
    items, _ = prediction_items(ds, space, pred, "train")
    prof = cProfile.Profile()
    prof.enable()
    count_files(space, items[:50], workers=1)
    prof.disable()
    pstats.Stats(prof).sort_stats("tottime").print_stats(15)


# --------------------------------------------------------------------------- main


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pairs", type=int, default=500)
    ap.add_argument("--workers", type=int, default=None, help="default: all cores")
    ap.add_argument("--repeat", type=int, default=5, help="timed runs of segdata and the floor (median)")
    ap.add_argument("--slow-repeat", type=int, default=1, help="timed runs of cityscapesScripts and torchmetrics")
    ap.add_argument("--work", type=Path, help="directory for the generated data (default: a temporary one)")
    ap.add_argument("--keep", action="store_true", help="keep the generated data")
    ap.add_argument("--skip-official", action="store_true")
    ap.add_argument("--skip-torchmetrics", action="store_true")
    ap.add_argument("--profile", action="store_true", help="also print a cProfile of the per-image work")
    ap.add_argument("--json", action="store_true", help="print the figures as JSON at the end")
    ap.add_argument("--run-official", nargs=2, metavar=("LISTS", "EXPORT"), help=argparse.SUPPRESS)
    ap.add_argument(
        "--torchmetrics-pairs",
        type=int,
        default=25,
        help="pairs for torchmetrics with its default validate_args=True (about 2 s a pair here); "
        "with validate_args=False it runs on every pair",
    )
    ap.add_argument("--run-torchmetrics", nargs=3, metavar=("LISTS", "VALIDATE", "PAIRS"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.run_official:
        run_official(*args.run_official)
        return 0
    if args.run_torchmetrics:
        run_torchmetrics(*args.run_torchmetrics)
        return 0

    import segdata
    from segdata.convert import convert
    from segdata.converters import cityscapes
    from segdata.runner import default_workers, parallel_map
    from segdata.synthetic.cityscapes import generate_cityscapes

    workers = args.workers or default_workers()
    work = args.work or Path(tempfile.mkdtemp(prefix="segdata-eval-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        src, unified, pred = work / "source", work / "unified", work / "pred"
        t0 = time.perf_counter()
        n_images = _n_images_for(args.pairs)
        if not (src / "gtFine").is_dir():
            generate_cityscapes(src, n_images, image_size=(1024, 2048), seed=0, workers=workers, polygons=False)
        t_gen = time.perf_counter() - t0
        t0 = time.perf_counter()
        if not unified.is_dir():
            convert(cityscapes, src, unified, workers=workers, name="eval-bench")
        t_conv = time.perf_counter() - t0
        ds = segdata.open(unified)
        train = ds.images[ds.images.split == "train"].head(args.pairs)
        ids = train["image_id"].tolist()
        t0 = time.perf_counter()
        lists = work / "lists.json"
        if lists.is_file() and len(json.loads(lists.read_text())["pred"]) == len(ids):  # kept from a run before
            doc = json.loads(lists.read_text())
            written = list(zip(doc["pred_train"], doc["pred"]))
        else:
            shutil.rmtree(pred, ignore_errors=True)
            items = [(i, i.split("_")[0], k) for k, i in enumerate(ids)]
            job = partial(_predict_one, str(src), str(pred))
            written = list(parallel_map(job, items, workers=workers, ordered=True))
        t_pred = time.perf_counter() - t0
        # only the evaluated images' masks under the unified split: the dataset holds more train
        # images than pairs when --pairs is not a multiple of 5; keep exactly the pairs
        if len(ds.images[ds.images.split == "train"]) != len(ids):
            raise SystemExit(f"{work} holds data generated for another --pairs: use a new --work")
        gt_labels = [str(src / "gtFine" / "train" / i.split("_")[0] / f"{i}_gtFine_labelIds.png") for i in ids]
        masks = [str(unified / "masks" / "objects" / "train" / f"{i}.png") for i in ids]
        pairs = [(p_train, m) for (p_train, _), m in zip(written, masks)]
        lists.write_text(
            json.dumps({"gt": gt_labels, "pred": [b for _, b in written], "pred_train": [a for a, _ in written]})
        )
        mb = sum(os.path.getsize(p) for pair in pairs for p in pair) / 2**20
        print(
            f"generated {n_images} images of 2048x1024 in {t_gen:.1f} s, converted in {t_conv:.1f} s, "
            f"{len(ids)} predictions written in {t_pred:.1f} s ({work})"
        )
        print(
            f"pairs: {len(pairs)} (prediction + unified mask: {mb:.1f} MiB of PNG); workers: {workers} of {os.cpu_count()} cores"
        )

        # warm-up: page cache, imports in the workers
        decode_floor(pairs, workers)
        library(unified, pred / "train", workers)
        floors, libs, clis, clis_boot = [], [], [], []
        cpu: dict[str, list[float]] = {k: [] for k in ("floor", "library", "cli", "cli_bootstrap")}
        report = report_boot = None
        for _ in range(args.repeat):
            floors.append(decode_floor(pairs, workers))
            cpu["floor"].append(LAST_CPU[0])
            libs.append(library(unified, pred / "train", workers)[0])
            cpu["library"].append(LAST_CPU[0])
            seconds, report = segdata_cli(unified, pred / "train", workers, 0)
            clis.append(seconds)
            cpu["cli"].append(LAST_CPU[0])
            seconds, report_boot = segdata_cli(unified, pred / "train", workers, None)
            clis_boot.append(seconds)
            cpu["cli_bootstrap"].append(LAST_CPU[0])
        official_runs, official = [], None
        if not args.skip_official:
            cpu["official"] = []
            for _ in range(args.slow_repeat):
                seconds, out = whole_process(
                    [sys.executable, __file__, "--run-official", str(lists), str(work / "official.json")]
                )
                official_runs.append(seconds)
                cpu["official"].append(LAST_CPU[0])
                official = json.loads(out)
        tm_runs, tm, tm_checked, tm_checked_pairs = [], None, None, 0
        if not args.skip_torchmetrics:
            cpu["torchmetrics"] = []
            for _ in range(args.slow_repeat):
                seconds, out = whole_process(
                    [sys.executable, __file__, "--run-torchmetrics", str(lists), "0", str(len(pairs))]
                )
                tm_runs.append(seconds)
                cpu["torchmetrics"].append(LAST_CPU[0])
                tm = json.loads(out)
            if args.torchmetrics_pairs > 0:
                tm_checked_pairs = min(args.torchmetrics_pairs, len(pairs))
                tm_checked, _ = whole_process(
                    [sys.executable, __file__, "--run-torchmetrics", str(lists), "1", str(tm_checked_pairs)]
                )

        n = len(pairs)
        med = {
            "floor": statistics.median(floors),
            "library": statistics.median(libs),
            "cli": statistics.median(clis),
            "cli_bootstrap": statistics.median(clis_boot),
        }
        if official_runs:
            med["official"] = statistics.median(official_runs)
        if tm_runs:
            med["torchmetrics"] = statistics.median(tm_runs)
        rows = [
            ("decode floor: read + decode both PNGs, segdata's decoder, process pool", "floor"),
            ("segdata eval, library call (evaluate, no bootstrap), process pool", "library"),
            ("segdata eval, whole process, --bootstrap 0", "cli"),
            ("segdata eval, whole process, default 1,000 BCa resamples", "cli_bootstrap"),
            ("cityscapesScripts evalPixelLevelSemanticLabeling (IoU + iIoU), whole process", "official"),
            (
                "torchmetrics MulticlassJaccardIndex (CPU, validate_args=False) fed by Pillow, whole process",
                "torchmetrics",
            ),
        ]
        print()
        cpu_med = {k: statistics.median(v) for k, v in cpu.items() if v}
        print("| | seconds (median) | ms per pair | pairs/s | CPU seconds (median) |")
        print("|---|---|---|---|---|")
        for label, key in rows:
            if key in med:
                print(
                    f"| {label} | {med[key]:.3f} | {med[key] / n * 1000:.2f} | {n / med[key]:.0f} | {cpu_med[key]:.2f} |"
                )
        paired = statistics.median(lib / f for f, lib in zip(floors, libs))
        print(
            f"| library / floor | **{med['library'] / med['floor']:.2f}x** (paired {paired:.2f}x) | | target: within 1.5x |"
        )
        print(f"| library / floor, CPU seconds | {cpu_med['library'] / cpu_med['floor']:.2f}x | | |")
        print(f"| whole process (--bootstrap 0) / floor | {med['cli'] / med['floor']:.2f}x | | |")
        if "official" in med:
            print(
                f"| cityscapesScripts / segdata, whole processes | **{med['official'] / med['cli']:.1f}x** "
                f"(with the bootstrap: {med['official'] / med['cli_bootstrap']:.1f}x) | | target: at least 15x |"
            )
            print(
                f"| cityscapesScripts / segdata, CPU seconds of the whole processes | "
                f"{cpu_med['official'] / cpu_med['cli']:.1f}x | | |"
            )
        if tm_checked is not None:
            per_pair = tm_checked / tm_checked_pairs
            print(
                f"| torchmetrics with its defaults (validate_args=True), whole process, first {tm_checked_pairs} pairs | "
                f"{tm_checked:.3f} | {per_pair * 1000:.2f} | {1 / per_pair:.0f} |"
            )
        if "torchmetrics" in med:
            print(
                f"| torchmetrics (validate_args=False) / segdata, whole processes | {med['torchmetrics'] / med['cli']:.1f}x | | |"
            )
        if tm_checked is not None:
            print(
                f"| torchmetrics defaults / segdata, per pair (its {tm_checked_pairs} pairs against segdata's {n}) | "
                f"{(tm_checked / tm_checked_pairs) / (med['cli'] / n):.1f}x | | |"
            )
        print(
            f"all runs: floor {[round(x, 3) for x in floors]}, library {[round(x, 3) for x in libs]}, "
            f"cli {[round(x, 3) for x in clis]}, cli+bootstrap {[round(x, 3) for x in clis_boot]}, "
            f"official {[round(x, 2) for x in official_runs]}, torchmetrics {[round(x, 2) for x in tm_runs]}"
        )
        assert report is not None and report_boot is not None
        print()
        print("figures (must agree):")
        print(f"  segdata          mIoU {report['miou']:.9f}  mean iIoU {report['mean_iiou']:.9f}")
        if official:
            print(f"  cityscapesScripts mIoU {official['miou']:.9f}  mean iIoU {official['mean_iiou']:.9f}")
            assert abs(official["miou"] - report["miou"]) < 1e-9, "segdata and cityscapesScripts disagree"
            assert abs(official["mean_iiou"] - report["mean_iiou"]) < 1e-9, "segdata and cityscapesScripts disagree"
        if tm:
            print(f"  torchmetrics     mIoU {tm['miou']:.9f} (float32)")
            assert abs(tm["miou"] - report["miou"]) < 1e-5, "segdata and torchmetrics disagree"
        print(f"  segdata 95% BCa interval of mIoU: {report_boot['ci']['miou']}")
        if args.profile:
            profile_one(unified, pred / "train")
        if args.json:
            print(
                json.dumps(
                    {
                        "pairs": n,
                        "workers": workers,
                        "cores": os.cpu_count(),
                        "medians_s": med,
                        "cpu_medians_s": cpu_med,
                        "cpu_runs": cpu,
                        "runs": {
                            "floor": floors,
                            "library": libs,
                            "cli": clis,
                            "cli_bootstrap": clis_boot,
                            "official": official_runs,
                            "torchmetrics": tm_runs,
                            "torchmetrics_validated": tm_checked,
                            "torchmetrics_validated_pairs": tm_checked_pairs,
                        },
                        "miou": {
                            "segdata": report["miou"],
                            "official": official and official["miou"],
                            "torchmetrics": tm and tm["miou"],
                        },
                    }
                )
            )
    finally:
        if not args.keep and args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
