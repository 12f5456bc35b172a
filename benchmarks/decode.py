"""PNG decoding: segdata's own decoder against pyspng, Pillow and (when installed) OpenCV.

Decodes the same files with each decoder in one process, each file repeatedly, and prints the
median milliseconds per file and segdata's speed-up over the fastest of the others. Every decoder's
array is checked against Pillow's before timing.

The files, by kind:
- Cityscapes ``instanceIds`` (16-bit grey) and ``labelIds`` (8-bit grey): the real samples under
  ``$SEGDATA_SAMPLES/cityscapes`` when the variable is set, else generated ones (written as the
  real files are, by Pillow with its default filters);
- ADE20K ``*_seg.png`` (8-bit RGB): the real samples when ``SEGDATA_SAMPLES`` is set;
- a segdata segment map (8-bit grey, filter 0, written by ``segdata.maskio.write_segment_map``).

    python benchmarks/decode.py
    SEGDATA_SAMPLES=../shared/samples python benchmarks/decode.py --repeat 50
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from segdata.maskio import decode_png, write_segment_map
from segdata.synthetic.cityscapes import generate_cityscapes


def _decoders() -> dict:
    out = {"segdata": decode_png}
    try:
        import pyspng

        out["pyspng"] = pyspng.load
    except ImportError:
        pass

    def pillow(data: bytes) -> np.ndarray:
        with Image.open(io.BytesIO(data)) as im:
            return np.asarray(im)

    out["Pillow"] = pillow
    try:
        import cv2

        out["OpenCV"] = lambda data: cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    except ImportError:
        pass
    return out


def _same(arr: np.ndarray, ref: np.ndarray) -> bool:
    arr = np.asarray(arr)
    if arr.ndim == 3 and ref.ndim == 2:  # pyspng gives 16-bit grey an alpha plane
        arr = arr[:, :, 0]
    if arr.ndim == 3 and ref.ndim == 3 and arr.shape[2] != ref.shape[2]:
        arr = arr[:, :, : ref.shape[2]]
    return arr.shape == ref.shape and np.array_equal(arr.astype(np.int64), ref.astype(np.int64))


def _files(work: Path) -> dict[str, list[Path]]:
    samples = os.environ.get("SEGDATA_SAMPLES")
    kinds: dict[str, list[Path]] = {}
    if samples:
        root = Path(samples)
        kinds["Cityscapes instanceIds (16-bit, real)"] = sorted(root.glob("cityscapes/gtFine/*/*/*_instanceIds.png"))
        kinds["Cityscapes labelIds (8-bit, real)"] = sorted(root.glob("cityscapes/gtFine/*/*/*_labelIds.png"))
        kinds["ADE20K _seg.png (RGB, real)"] = sorted(root.glob("ade20k_full/**/*_seg.png"))
        kinds["COCO panoptic PNG (RGB, real)"] = sorted(root.glob("coco*/annotations/panoptic_*/*.png"))
    else:
        src = generate_cityscapes(work / "cityscapes", 6, seed=0, polygons=False)
        kinds["Cityscapes instanceIds (16-bit, generated)"] = sorted(src.glob("gtFine/*/*/*_instanceIds.png"))
        kinds["Cityscapes labelIds (8-bit, generated)"] = sorted(src.glob("gtFine/*/*/*_labelIds.png"))
    lab = next(iter(kinds.values()))[0]
    seg = work / "segment_map.png"
    ids = np.asarray(Image.open(lab)).astype(np.int64)
    _, inverse = np.unique(ids, return_inverse=True)
    write_segment_map(seg, (inverse.reshape(ids.shape) + 1).astype(np.uint16))
    kinds["segdata segment map (filter 0)"] = [seg]
    return {k: v for k, v in kinds.items() if v}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=20, help="timed decodes of each file per decoder")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    decoders = _decoders()
    rows = []
    with tempfile.TemporaryDirectory(prefix="segdata-decode-") as tmp:
        for kind, paths in _files(Path(tmp)).items():
            datas = [p.read_bytes() for p in paths]
            for data in datas:
                ref = decoders["Pillow"](data)
                for name, fn in decoders.items():
                    if not _same(fn(data), ref):
                        raise SystemExit(f"{name} decodes {kind} differently from Pillow")
            ms = {}
            for name, fn in decoders.items():
                times = []
                for _ in range(args.repeat):
                    t0 = time.perf_counter()
                    for data in datas:
                        fn(data)
                    times.append((time.perf_counter() - t0) / len(datas) * 1000)
                ms[name] = statistics.median(times)
            others = {k: v for k, v in ms.items() if k != "segdata"}
            best = min(others, key=others.get)
            rows.append(
                {
                    "kind": kind,
                    "files": len(datas),
                    "ms": ms,
                    "fastest_other": best,
                    "speedup": others[best] / ms["segdata"],
                }
            )
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    names = list(decoders)
    print("| file kind | files | " + " | ".join(f"{n} ms" for n in names) + " | segdata vs the fastest other |")
    print("|---|---|" + "---|" * len(names) + "---|")
    for r in rows:
        cells = " | ".join(f"{r['ms'][n]:.2f}" for n in names)
        print(f"| {r['kind']} | {r['files']} | {cells} | **{r['speedup']:.1f}x** ({r['fastest_other']}) |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
