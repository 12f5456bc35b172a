"""Model evaluation (``segdata eval --model``): how much of the time is not the network.

Runs the compact baseline (``segdata.torch.models.build("deeplab-small", K)``, untrained: the
weights do not change the work) over generated 512x512 images with
:func:`segdata.torch.inference.evaluate_model`, timing the model's forward passes from inside (a
wrapper around the network), and prints the share of the wall time spent outside them (reading
and decoding images and masks, normalising, argmax, counting). Target (issue 13): at most 25% on
CPU. Then the confusion accumulation rate on device tensors (Gpixel/s): ``update_segments`` (the
evaluation's path) and ``update`` (per-pixel ground truth), on CUDA when there is one.

    python benchmarks/eval_model.py                 # 24 images, workers 0 and 2, CPU
    python benchmarks/eval_model.py --device cuda --images 200 --batch-size 8
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import segdata
from segdata.convert import convert
from segdata.converters import voc
from segdata.eval.space import EvalSpace
from segdata.synthetic.voc import generate_voc
from segdata.torch.checkpoint import IMAGENET_NORMALIZE, LoadedModel
from segdata.torch.confusion import DeviceConfusion
from segdata.torch.inference import evaluate_model


class Timed(torch.nn.Module):
    """The network, with the wall time of every forward pass added up (synchronised on CUDA)."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model
        self.seconds = 0.0
        self.calls = 0

    def forward(self, x):
        if x.is_cuda:
            torch.cuda.synchronize(x.device)
        start = time.perf_counter()
        out = self.model(x)
        if x.is_cuda:
            torch.cuda.synchronize(x.device)
        self.seconds += time.perf_counter() - start
        self.calls += 1
        return out


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def share_outside_forward(ds, space, model, args, workers: int) -> dict:
    timed = Timed(model)
    loaded = LoadedModel(timed, IMAGENET_NORMALIZE, None, "deeplab-small")
    # warm-up on two images (allocator, threads, lazy inits), not counted
    ids = ds.images["image_id"].tolist()
    evaluate_model(
        ds, loaded, None, space, batch_size=args.batch_size, workers=0, device=args.device, image_ids=ids[:2]
    )
    timed.seconds, timed.calls = 0.0, 0
    start = time.perf_counter()
    counts = evaluate_model(
        ds, loaded, None, space, batch_size=args.batch_size, workers=workers, device=args.device, amp=args.amp
    )
    _sync(torch.device(args.device))
    total = time.perf_counter() - start
    return {
        "workers": workers,
        "images": len(counts.image_ids),
        "total_s": total,
        "forward_s": timed.seconds,
        "outside_share": 1.0 - timed.seconds / total,
        "ms_per_image": 1000 * total / len(counts.image_ids),
        "pixels": int(counts.matrix.sum()),
    }


def accumulation_rate(device: torch.device, k: int, batch: int, size: tuple[int, int], repeat: int) -> dict:
    """Gpixel/s of DeviceConfusion on tensors already on the device (uint8 segment maps with ~100
    segments, int32 predictions; for ``update``, int64 ground truth with 5% ignored)."""
    g = torch.Generator(device="cpu").manual_seed(0)
    h, w = size
    segs = torch.randint(1, 100, (batch, h, w), generator=g, dtype=torch.int64).to(torch.uint8).to(device)
    pred = torch.randint(0, k, (batch, h, w), generator=g, dtype=torch.int64).to(torch.int32).to(device)
    luts = [np.random.default_rng(i).integers(-1, k, 100) for i in range(batch)]
    gt = torch.randint(-1, k, (batch, h, w), generator=g, dtype=torch.int64).to(device)
    out = {}
    for name, step in (
        ("update_segments", lambda c: c.update_segments(segs, luts, pred)),
        ("update", lambda c: c.update(gt, pred)),
    ):
        conf = DeviceConfusion(k, device)
        step(conf)  # warm-up
        times = []
        for _ in range(repeat):
            _sync(device)
            start = time.perf_counter()
            step(conf)
            _sync(device)
            times.append(time.perf_counter() - start)
        out[name] = batch * h * w / statistics.median(times) / 1e9
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=24)
    parser.add_argument("--size", type=int, default=512, help="image side in pixels")
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--workers", default="0,2", help="DataLoader workers to measure, comma-separated")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--amp", action="store_true")
    parser.add_argument("--repeat", type=int, default=5, help="timed repeats of the accumulation rate")
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)
    from segdata.torch.models import build

    with tempfile.TemporaryDirectory() as tmp:
        root = generate_voc(Path(tmp) / "src", args.images, size=(args.size, args.size), seed=0, workers=2)
        convert(voc, root, Path(tmp) / "ds", workers=2)
        ds = segdata.open(Path(tmp) / "ds")
        space = EvalSpace.build(ds, "train")
        model = build("deeplab-small", space.num_classes).eval().to(device)
        print(
            f"deeplab-small, {space.num_classes} classes, {args.images} images of {args.size}x{args.size}, "
            f"batch {args.batch_size}, {args.device}, torch threads {torch.get_num_threads()}"
            + (", amp" if args.amp else "")
        )
        for workers in (int(w) for w in args.workers.split(",")):
            r = share_outside_forward(ds, space, model, args, workers)
            verdict = "meets" if r["outside_share"] <= 0.25 else "MISSES"
            print(
                f"  workers {workers}: {r['total_s']:.2f} s total, {r['forward_s']:.2f} s in forward, "
                f"{r['ms_per_image']:.0f} ms/image; outside the forward pass: {100 * r['outside_share']:.1f}% "
                f"({verdict} the 25% target)"
            )
    size = (1024, 2048)
    batch = 4 if device.type == "cpu" else 16
    rates = accumulation_rate(device, 19, batch, size, args.repeat)
    print(f"confusion accumulation on {device} ({batch} x {size[0]}x{size[1]}, K = 19, median of {args.repeat}):")
    for name, rate in rates.items():
        print(f"  {name}: {rate:.3f} Gpixel/s")


if __name__ == "__main__":
    main()
