"""Convert a generated Cityscapes gtFine dataset with segdata and with Datumaro, in one run.

Prints images per second of both and their ratio, then what each keeps of the thing instances:
the source's instances (distinct instanceIds values >= 1000 per image), segdata's instance
segments, and the instances that survive a COCO panoptic export (a segment of the same class,
not crowd, with IoU >= 0.5 against the source instance: the PQ matching rule) from Datumaro and,
once ``segdata.converters.coco`` has ``write``, from segdata.

    python benchmarks/convert_cityscapes.py              # 200 images, 2048x1024 (pip install -e ".[bench]")
    python benchmarks/convert_cityscapes.py --png fast   # files that decode 5x faster

The generated PNGs are encoded as the real files are (Pillow's default encoder) unless ``--png
fast``; decoding them costs what decoding the real files costs. Datumaro's ``cityscapes`` importer
reads ``*_gtFine_instanceIds.png`` and needs a ``leftImg8bit/<subset>`` folder per subset: the
generator writes empty ones, so segdata lists every image as "image file missing" (non-fatal).
Datumaro exports to its own format (which decodes every mask), as in benchmarks/convert_ade20k.py.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import re
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import print_figures, ratio_line
from datumaro_runner import datumaro_available, datumaro_convert

import segdata
from segdata.convert import convert
from segdata.converters import cityscapes
from segdata.runner import default_workers
from segdata.synthetic.cityscapes import generate_cityscapes

_IMAGE_ID = re.compile(r"([A-Za-z-]+_\d{6}_\d{6})")


def _norm(name: str) -> str:
    """Class names compared without spaces and case (Datumaro writes 'trafficlight')."""
    return name.replace(" ", "").replace("_", "").lower()


def source_instances(root: Path, image_ids: list[str] | None = None) -> dict[str, np.ndarray]:
    """Per image id: the instanceIds map (int64), read with Pillow."""
    out = {}
    for path in sorted(root.glob("gtFine/*/*/*_gtFine_instanceIds.png")):
        image_id = path.name[: -len("_gtFine_instanceIds.png")]
        if image_ids is None or image_id in image_ids:
            out[image_id] = np.asarray(Image.open(path)).astype(np.int64)
    return out


def count_source_instances(maps: dict[str, np.ndarray]) -> int:
    """Distinct instanceIds values >= 1000, summed over images."""
    return sum(len(np.unique(v[v >= 1000])) for v in maps.values())


def count_kept_instances(panoptic_dir: Path, maps: dict[str, np.ndarray]) -> int:
    """Source instances found again in a COCO panoptic export under ``panoptic_dir``.

    A source instance (value ``v >= 1000`` of an image's instanceIds) is kept when the export has a
    segment of a category with the same name as labelId ``v // 1000``, ``iscrowd`` 0, whose pixels
    overlap it with IoU >= 0.5. Exported images are matched to sources by the
    ``<city>_<seq>_<frame>`` in their file name.
    """
    pngs: dict[str, Path] = {}
    for p in panoptic_dir.rglob("*.png"):
        pngs.setdefault(p.name, p)
    kept = 0
    for js in sorted(panoptic_dir.rglob("*.json")):
        try:
            data = json.loads(js.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError):
            continue
        anns = data.get("annotations") if isinstance(data, dict) else None
        if not anns or not isinstance(anns, list) or "segments_info" not in anns[0]:
            continue
        names = {c["id"]: _norm(c["name"]) for c in data.get("categories", [])}
        for ann in anns:
            m = _IMAGE_ID.search(ann["file_name"])
            if m is None or m.group(1) not in maps:
                continue
            candidates = [js.parent / js.stem / ann["file_name"], js.parent / ann["file_name"]]
            png = next((c for c in candidates if c.is_file()), pngs.get(Path(ann["file_name"]).name))
            if png is None:
                raise FileNotFoundError(f"{js}: no PNG for {ann['file_name']}")
            rgb = np.asarray(Image.open(png).convert("RGB")).astype(np.int64)
            ids = rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]
            kept += _matched(maps[m.group(1)], ids, ann["segments_info"], names)
    return kept


def _matched(source: np.ndarray, ids: np.ndarray, segments: list[dict], names: dict[int, str]) -> int:
    if source.shape != ids.shape:
        return 0
    inst_values = np.unique(source[source >= 1000])
    if not inst_values.size or not segments:
        return 0
    seg_ids = np.array([s["id"] for s in segments])
    # compact both maps, then one joint bincount
    s_index = np.searchsorted(inst_values, source)
    s_index = np.where(
        (source >= 1000) & (inst_values[np.minimum(s_index, len(inst_values) - 1)] == source), s_index + 1, 0
    )
    order = np.argsort(seg_ids)
    e_pos = np.searchsorted(seg_ids[order], ids)
    e_ok = seg_ids[order][np.minimum(e_pos, len(seg_ids) - 1)] == ids
    e_index = np.where(e_ok, order[np.minimum(e_pos, len(seg_ids) - 1)] + 1, 0)
    ns, ne = len(inst_values) + 1, len(segments) + 1
    joint = np.bincount(s_index.ravel() * ne + e_index.ravel(), minlength=ns * ne).reshape(ns, ne)
    area_s, area_e = joint.sum(axis=1), joint.sum(axis=0)
    kept = 0
    for i, v in enumerate(inst_values, 1):
        name = _norm(cityscapes.ID_TO_LABEL[int(v) // 1000].name)
        for j, seg in enumerate(segments, 1):
            if seg.get("iscrowd", 0) or names.get(seg["category_id"]) != name or not joint[i, j]:
                continue
            if joint[i, j] / (area_s[i] + area_e[j] - joint[i, j]) >= 0.5:
                kept += 1
                break
    return kept


# ---------------------------------------------------------------------------------------------
# HOOK for segdata's COCO panoptic exporter (converters/coco/export.py): it is called
# when segdata.converters.coco has a `write(dataset, out, ...)`; until then the benchmark prints
# "pending". Adjust the call below to that exporter's options once it exists.
# ---------------------------------------------------------------------------------------------
def segdata_panoptic_instance_count(dataset_path: Path) -> int | None:
    """Export the unified dataset at ``dataset_path`` with segdata's COCO panoptic exporter and
    count the source instances it keeps (:func:`count_kept_instances`; the Cityscapes source root
    is read from the dataset's manifest). None when the exporter does not exist yet."""
    try:
        coco = importlib.import_module("segdata.converters.coco")
    except ImportError:
        return None
    if not hasattr(coco, "write"):
        return None
    ds = segdata.open(dataset_path)
    source_root = Path(ds.manifest["source"]["root"])
    with tempfile.TemporaryDirectory(prefix="segdata-panoptic-") as tmp:
        out = Path(tmp) / "coco"
        coco.write(ds, out)
        return count_kept_instances(out, source_instances(source_root, list(ds.images.image_id)))


def datumaro_panoptic_instance_count(src: Path, maps: dict[str, np.ndarray]) -> int:
    """Import ``src`` with Datumaro (cityscapes), export coco_panoptic, count kept instances."""
    import datumaro as dm

    with tempfile.TemporaryDirectory(prefix="datumaro-panoptic-") as tmp:
        dataset = dm.Dataset.import_from(str(src), "cityscapes")
        dataset.export(tmp, "coco_panoptic", save_media=False)
        return count_kept_instances(Path(tmp), maps)


def _subset_copy(root: Path, dest: Path, n: int) -> list[str]:
    """Copy the label files of the first ``n`` images (sorted by split, id) with empty leftImg8bit dirs."""
    labels = sorted(root.glob("gtFine/*/*/*_gtFine_instanceIds.png"), key=lambda p: (p.parent.parent.name, p.name))[:n]
    ids = []
    for path in labels:
        image_id = path.name[: -len("_gtFine_instanceIds.png")]
        rel = path.parent.relative_to(root)
        (dest / rel).mkdir(parents=True, exist_ok=True)
        (dest / "leftImg8bit" / rel.parts[1]).mkdir(parents=True, exist_ok=True)
        for kind in ("instanceIds", "labelIds", "color"):
            shutil.copyfile(path.parent / f"{image_id}_gtFine_{kind}.png", dest / rel / f"{image_id}_gtFine_{kind}.png")
        ids.append(image_id)
    return ids


def _cpu_seconds() -> float:
    """CPU time of this process and of its finished children (the pool's workers), in seconds."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=200)
    ap.add_argument("--height", type=int, default=1024)
    ap.add_argument("--width", type=int, default=2048)
    ap.add_argument("--workers", type=int, default=default_workers(), help="segdata workers (default: all cores)")
    ap.add_argument(
        "--png",
        choices=["cityscapes", "fast"],
        default="cityscapes",
        help="PNG encoding of the generated files (default: as the real files)",
    )
    ap.add_argument("--data", type=Path, help="where to generate the source data (default: a temporary directory)")
    ap.add_argument("--no-datumaro", action="store_true", help="time segdata only")
    ap.add_argument(
        "--instance-images", type=int, default=50, help="images over which kept instances are counted (0: skip)"
    )
    ap.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = ap.parse_args(argv)

    stamp_name = ".segdata-bench.json"
    if (
        args.data is not None
        and args.data.is_dir()
        and any(args.data.iterdir())
        and not (args.data / stamp_name).is_file()
    ):
        ap.error(f"--data {args.data} holds files this benchmark did not generate; give an empty or new folder")
    work = Path(tempfile.mkdtemp(prefix="segdata-bench-cs-"))
    data = args.data or work / "src"
    stamp = data / stamp_name
    wanted = {"images": args.images, "size": [args.height, args.width], "png": args.png, "seed": 0}
    if not (stamp.is_file() and json.loads(stamp.read_text()) == wanted):
        shutil.rmtree(data, ignore_errors=True)
        t0 = time.perf_counter()
        generate_cityscapes(
            data,
            args.images,
            image_size=(args.height, args.width),
            seed=0,
            workers=default_workers(),
            png=args.png,
            left_images="dirs",
        )
        stamp.write_text(json.dumps(wanted))
        print(
            f"generated {args.images} images of {args.width}x{args.height} ({args.png} PNGs) in "
            f"{time.perf_counter() - t0:.1f} s",
            file=sys.stderr,
        )

    out = work / "segdata-out"
    cpu0, t0 = _cpu_seconds(), time.perf_counter()
    report = convert(cityscapes, data, out, workers=args.workers)
    seg_seconds, seg_cpu = time.perf_counter() - t0, _cpu_seconds() - cpu0
    figures = {
        "images": report.images,
        "image_size": f"{args.width}x{args.height}",
        "png_encoding": args.png,
        "segments": report.segments,
        "segdata_workers": args.workers,
        "cores": os.cpu_count(),
        "segdata_seconds": round(seg_seconds, 2),
        "segdata_images_per_second": round(report.images / seg_seconds, 2),
        "segdata_cpu_ms_per_image": round(1000 * seg_cpu / max(1, report.images), 1),
    }
    shutil.rmtree(out, ignore_errors=True)

    version = None if args.no_datumaro else datumaro_available()
    if not args.no_datumaro and version is None:
        print("Datumaro is not installed (pip install -e '.[bench]'); timing segdata only", file=sys.stderr)
    if version is not None:
        cpu0 = _cpu_seconds()
        dm = datumaro_convert(data, work / "dm-out", fmt="cityscapes")
        dm_cpu = _cpu_seconds() - cpu0
        figures.update(
            datumaro_version=version,
            datumaro_images=dm["items"],
            datumaro_seconds=round(dm["seconds"], 2),
            datumaro_images_per_second=round(dm["items"] / dm["seconds"], 3),
            datumaro_ms_per_image=round(1000 * dm["seconds"] / max(1, dm["items"]), 1),
            datumaro_cpu_ms_per_image=round(1000 * dm_cpu / max(1, dm["items"]), 1),
        )
        figures["ratio"] = round(figures["segdata_images_per_second"] / figures["datumaro_images_per_second"], 1)
        # CPU time per image does not depend on what else the machine runs: the ratio a quiet
        # machine with this many cores would show (Datumaro runs on one core)
        figures["ratio_from_cpu_time"] = round(
            min(args.workers, os.cpu_count() or 1)
            * figures["datumaro_cpu_ms_per_image"]
            / figures["segdata_cpu_ms_per_image"],
            1,
        )
        shutil.rmtree(work / "dm-out", ignore_errors=True)

    if args.instance_images > 0:
        subset = work / "subset"
        ids = _subset_copy(data, subset, args.instance_images)
        maps = source_instances(subset, ids)
        unified = work / "subset-unified"
        convert(cityscapes, subset, unified, workers=args.workers)
        seg = segdata.open(unified).segments
        figures["instance_images"] = len(ids)
        figures["source_instances"] = count_source_instances(maps)
        figures["segdata_instance_segments"] = int(seg["is_instance"].sum())
        if version is not None:
            figures["datumaro_panoptic_instances_kept"] = datumaro_panoptic_instance_count(subset, maps)
        kept = segdata_panoptic_instance_count(unified)
        figures["segdata_panoptic_instances_kept"] = "pending" if kept is None else kept
    shutil.rmtree(work, ignore_errors=True)

    print_figures(figures, args.json)
    if "ratio" in figures and not args.json:
        print("\n" + ratio_line(figures, args.workers))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
