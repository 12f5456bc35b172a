"""Training-data loading: ``segdata.torch.SegmentationDataset`` against the loop mmsegmentation's
loader runs (Pillow + numpy), both in a ``torch.utils.data.DataLoader`` with the same workers,
in one run.

The data: generated Cityscapes scenes (2048x1024, ``segdata.synthetic.cityscapes`` with RGB
``leftImg8bit`` PNGs; label PNGs encoded as the real files are), converted with ``segdata convert
cityscapes``. Each loader yields, per sample, the image as a float32 (3, H, W) tensor in [0, 1]
and the label as an int64 (H, W) tensor of Cityscapes train ids (255 = ignore); the two are
checked equal before timing.

- baseline ("Pillow + numpy", as mmseg's ``LoadImageFromFile`` + ``LoadAnnotations`` +
  ``DefaultFormatBundle`` with the pillow backend): ``np.array(Image.open(leftImg8bit))``,
  ``np.array(Image.open(labelIds))``, the labelId -> trainId mapping as one numpy lookup table
  (mmseg loops over the ids, which is slower), ``img.astype(np.float32) / 255``,
  ``np.ascontiguousarray(img.transpose(2, 0, 1))``, ``label.astype(np.int64)``;
- segdata: ``segdata.torch.loader(SegmentationDataset(ds, split), ...)``, a DataLoader with the
  same workers whose batches are decoded in place (segment map by segdata's decoder, one lookup
  per pixel into the per-image segment -> train id table; the image PNG by segdata's decoder,
  unfiltered straight into float32 planes) into slots of shared memory each worker reuses, and
  handed over without a copy (``segdata.torch.batching``).

Each round times one pass over the dataset per loader (persistent workers, started and warmed
before timing), alternating; the figure is the median of the rounds. segdata is timed twice:
through ``segdata.torch.loader`` and as ``SegmentationDataset`` in a plain ``DataLoader`` (samples
one by one, the default collation). A per-stage profile in one
process says where the time goes.

    python benchmarks/loader.py                     # 40 images, 2 workers, 5 rounds
    python benchmarks/loader.py --images 80 --workers 4 --batch-size 2 --json
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import print_figures

import segdata
from segdata.convert import convert
from segdata.converters import cityscapes
from segdata.maskio import decode_png, decode_png_planes, read_segment_map
from segdata.synthetic.cityscapes import generate_cityscapes
from segdata.synthetic.pngs import paeth_png
from segdata.torch import SegmentationDataset, loader
from segdata.torch.data import _decode_rgb, image_tensor

try:
    import pyspng as _pyspng
except ImportError:
    _pyspng = None


class PillowNumpyDataset(torch.utils.data.Dataset):
    """mmsegmentation's loading pipeline with the pillow backend, on the source files: with
    ``uint8``, mmseg 1.x (``PackSegInputs`` ships uint8 CHW, normalisation on the device), else
    mmseg 0.x (``Normalize`` in the workers, float32 CHW)."""

    def __init__(self, pairs: list[tuple[str, str, str]], label_map: np.ndarray, uint8: bool = False):
        self.pairs = pairs  # (image_id, leftImg8bit path, labelIds path)
        self.label_map = label_map  # labelId -> trainId, uint8 (256,)
        self.uint8 = uint8

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, i: int) -> dict:
        image_id, img_path, ann_path = self.pairs[i]
        with open(img_path, "rb") as f:  # LoadImageFromFile: file client get + imfrombytes(pillow)
            img = np.array(Image.open(f).convert("RGB"))
        with open(ann_path, "rb") as f:  # LoadAnnotations: imfrombytes(flag="unchanged", pillow)
            gt = np.array(Image.open(f)).astype(np.uint8)
        gt = self.label_map[gt]  # label mapping (one table instead of mmseg's loop over the ids)
        if not self.uint8:
            img = img.astype(np.float32) / 255.0  # Normalize to [0, 1]
        img = np.ascontiguousarray(img.transpose(2, 0, 1))  # DefaultFormatBundle / PackSegInputs
        return {"image": torch.from_numpy(img), "label": torch.from_numpy(gt.astype(np.int64)), "image_id": image_id}


class ClonedSample(torch.utils.data.Dataset):
    """The floor: each item a fresh copy of one decoded sample (allocation, collation and the
    transfer from the workers; no decoding)."""

    def __init__(self, sample: dict, n: int):
        self.sample, self.n = sample, n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict:
        return {"image": self.sample["image"].clone(), "label": self.sample["label"].clone(), "image_id": str(i)}


def build(work: Path, n_images: int, workers: int) -> tuple[Path, Path]:
    src, out = work / "src", work / "unified"
    if not (src / "done").exists():
        generate_cityscapes(src, n_images, seed=0, workers=workers, polygons=False, left_images="png")
        for path in sorted(src.glob("leftImg8bit/*/*/*.png")):
            path.write_bytes(paeth_png(np.asarray(Image.open(path).convert("RGB"))))
        (src / "done").write_text("")
    if not (out / "segdata.json").exists():
        convert(cityscapes, src, out, workers=workers)
    return src, out


def baseline_for(src: Path, ds_path: Path, split: str, uint8: bool) -> PillowNumpyDataset:
    ds = segdata.open(ds_path)
    label_map = np.full(256, 255, np.uint8)
    for cid, tid in zip(ds.classes["class_id"], ds.classes["train_id"]):
        if 1 <= cid <= 256 and not pd.isna(tid):  # class_id = labelId + 1
            label_map[int(cid) - 1] = int(tid)
    images = ds.select_images(split)
    pairs = []
    for image_id, file in zip(images["image_id"], images["file"]):
        city = image_id.split("_")[0]
        pairs.append(
            (image_id, str(src / file), str(src / "gtFine" / split / city / f"{image_id}_gtFine_labelIds.png"))
        )
    return PillowNumpyDataset(pairs, label_map, uint8)


def check_equal(ours: SegmentationDataset, base: PillowNumpyDataset, n: int = 3) -> None:
    for i in range(min(n, len(ours))):
        a, b = ours[i], base[i]
        assert a["image_id"] == b["image_id"]
        if not torch.equal(a["label"], b["label"]):
            raise SystemExit(f"labels differ on {a['image_id']}")
        if a["image"].dtype != b["image"].dtype or not torch.allclose(
            a["image"].float(), b["image"].float(), atol=1e-6
        ):
            raise SystemExit(f"images differ on {a['image_id']}")


def one_pass(batches, touch: bool = False) -> float:
    """Seconds for one pass; with ``touch``, one value of every 4 KiB page of each batch is read, as
    the copy to a device reads them (the pages the main process maps are then faulted in)."""
    start = time.perf_counter()
    n = 0
    for batch in batches:
        n += len(batch["image_id"])
        if touch:
            for key in ("image", "label"):
                flat = batch[key].reshape(-1)
                flat[:: 4096 // flat.element_size()].sum()
    return time.perf_counter() - start


def profile(ours: SegmentationDataset, base: PillowNumpyDataset, repeat: int) -> dict:
    """Median milliseconds per sample of each stage, in this process, over the first images."""
    stages: dict[str, list[float]] = {}

    def timed(name, fn, *args, **kwargs):
        t = time.perf_counter()
        out = fn(*args, **kwargs)
        stages.setdefault(name, []).append((time.perf_counter() - t) * 1000)
        return out

    def pillow_rgb(path):
        return np.array(Image.open(path).convert("RGB"))

    def pillow_grey(path):
        return np.array(Image.open(path)).astype(np.uint8)

    def to_float(img):
        return img.astype(np.float32) / 255.0

    def chw(img):
        return np.ascontiguousarray(img.transpose(2, 0, 1))

    torch.set_num_threads(1)  # as in a DataLoader worker
    for i in range(min(len(ours), repeat)):
        _, img_path, ann_path = base.pairs[i]
        img = timed("baseline: Pillow decode image", pillow_rgb, img_path)
        gt = timed("baseline: Pillow decode labelIds", pillow_grey, ann_path)
        gt = timed("baseline: label map (numpy)", base.label_map.__getitem__, gt)
        f = timed("baseline: float32 / 255 (numpy)", to_float, img)
        timed("baseline: CHW transpose of float (numpy)", chw, f)
        timed("baseline: label int64", gt.astype, np.int64)
        timed("baseline: whole float32 sample", base.__getitem__, i)
        data = timed("segdata: read image file", Path(ours.image_path(i)).read_bytes)
        timed("segdata: decode image to float32 planes", decode_png_planes, data, img_path)
        rgb = timed("  (decode to (H, W, 3) uint8, for transforms)", _decode_rgb, data, img_path)
        timed("  (then to float32 planes)", image_tensor, rgb)
        segmap = timed("segdata: decode segment map", read_segment_map, ours.mask_paths[i], view=True)
        timed("segdata: segment -> train id (int64)", np.take, ours.lookup(i).astype(np.int64), segmap)
        timed("segdata: whole float32 sample", ours.__getitem__, i)
    return {k: round(statistics.median(v), 1) for k, v in stages.items()}


def real_decodes(samples: Path, repeat: int = 3) -> dict:
    """Median ms to decode each real leftImg8bit sample with each decoder."""
    out = {}
    decoders = {"Pillow": lambda d: np.asarray(Image.open(io.BytesIO(d)).convert("RGB")), "segdata": decode_png}
    if _pyspng is not None:
        decoders["pyspng"] = _pyspng.load
    decoders["segdata to float32 planes (as SegmentationDataset)"] = lambda d: decode_png_planes(d, "<real>")
    files = sorted(samples.glob("cityscapes/leftImg8bit/*/*/*.png"))
    for name, fn in decoders.items():
        times = []
        for path in files:
            data = path.read_bytes()
            fn(data)
            for _ in range(repeat):
                t = time.perf_counter()
                fn(data)
                times.append((time.perf_counter() - t) * 1000)
        if times:
            out[name] = round(statistics.median(times), 1)
    return out


def measure(ours, base, workers: int, batch_size: int, rounds: int, touch: bool) -> dict[str, list[float]]:
    """Seconds per pass of each loader, ``rounds`` alternating passes each."""

    def plain(dataset):
        return torch.utils.data.DataLoader(
            dataset, batch_size=batch_size, num_workers=workers, persistent_workers=workers > 0
        )

    floor = ClonedSample(ours[0], len(ours))
    loaders = {
        "baseline": plain(base),
        "segdata": loader(ours, batch_size, num_workers=workers, persistent_workers=workers > 0),
        "segdata, plain DataLoader": plain(ours),
        "floor": plain(floor),
    }
    for dl in loaders.values():  # start the workers, warm the page cache
        one_pass(dl, touch)
    times: dict[str, list[float]] = {name: [] for name in loaders}
    for _ in range(rounds):
        for name, dl in loaders.items():
            times[name].append(one_pass(dl, touch))
    del loaders
    return times


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=40, help="generated 2048x1024 images (default 40)")
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers of both loaders (default 2)")
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5, help="timed passes per loader, alternating (default 5)")
    parser.add_argument("--formats", default="float32,uint8", help="image dtypes to time (default float32,uint8)")
    parser.add_argument("--work", type=Path, help="keep the generated data here (reused when present)")
    parser.add_argument("--skip-profile", action="store_true")
    parser.add_argument(
        "--touch",
        action="store_true",
        help="read every page of each batch in the main process, as a copy to a GPU does",
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    tmp = None
    if args.work is None:
        tmp = tempfile.TemporaryDirectory(prefix="segdata-loader-")
        args.work = Path(tmp.name)
    args.work.mkdir(parents=True, exist_ok=True)
    src, ds_path = build(args.work, args.images, max(1, os.cpu_count() or 1))
    split = "train"
    figures: dict = {
        "images": None,
        "image size": "2048x1024",
        "workers": args.workers,
        "batch size": args.batch_size,
        "cores": os.cpu_count(),
        "batches read in the main process": args.touch,
    }
    lines = []
    for fmt in args.formats.split(","):
        uint8 = fmt == "uint8"
        ours = SegmentationDataset(ds_path, split, image_dtype=torch.uint8 if uint8 else torch.float32)
        base = baseline_for(src, ds_path, split, uint8)
        check_equal(ours, base)
        n = figures["images"] = len(ours)
        times = measure(ours, base, args.workers, args.batch_size, args.rounds, args.touch)
        base_times, ours_times = times["baseline"], times["segdata"]
        base_t, ours_t = statistics.median(base_times), statistics.median(ours_times)
        default_t = statistics.median(times["segdata, plain DataLoader"])
        figures[f"{fmt}: baseline (Pillow + numpy) images/s"] = round(n / base_t, 2)
        figures[f"{fmt}: segdata images/s"] = round(n / ours_t, 2)
        figures[f"{fmt}: ratio"] = round(base_t / ours_t, 2)
        figures[f"{fmt}: SegmentationDataset in a plain DataLoader images/s"] = round(n / default_t, 2)
        figures[f"{fmt}: ratio in a plain DataLoader"] = round(base_t / default_t, 2)
        figures[f"{fmt}: floor (copies of one sample, no decoding) images/s"] = round(
            n / statistics.median(times["floor"]), 2
        )
        figures[f"{fmt}: pass times s (baseline, segdata.torch.loader, plain DataLoader)"] = [
            [round(t, 2) for t in base_times],
            [round(t, 2) for t in ours_times],
            [round(t, 2) for t in times["segdata, plain DataLoader"]],
        ]
        lines.append(
            f"{fmt} images + int64 labels: segdata.torch.loader delivers {round(base_t / ours_t, 2)}x as many "
            f"samples per second as Pillow + numpy ({args.workers} workers, {os.cpu_count()} cores)"
        )
    prof = {}
    if not args.skip_profile:
        ours = SegmentationDataset(ds_path, split)
        prof = profile(ours, baseline_for(src, ds_path, split, False), repeat=min(len(ours), 8))
        figures["profile, ms per sample (one process)"] = prof
        samples = os.environ.get("SEGDATA_SAMPLES")
        if samples:
            figures["real leftImg8bit decode, ms"] = real_decodes(Path(samples))
    if args.json:
        print_figures(figures, True)
    else:
        figures.pop("profile, ms per sample (one process)", None)
        real = figures.pop("real leftImg8bit decode, ms", None)
        print_figures(figures, False, width=44)
        for k, v in prof.items():
            print(f"  {k:44s} {v:8.1f} ms")
        if real:
            print("  real Cityscapes leftImg8bit, median decode: " + ", ".join(f"{k} {v} ms" for k, v in real.items()))
        for line in lines:
            print(line)
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
