"""``segdata demo``: the whole story on a built-in synthetic sample, no download needed.

1. A learnable synthetic ADE20K dataset (2021 layout, power-law classes, a training and a
   validation split; :func:`segdata.synthetic.synthesize_ade20k`) and a simulated re-annotation of
   its first training images, calibrated on the ADE20K study (82.4% agreement; 5.7 / 6.0 / 5.9%
   disagreement).
2. Conversion into the unified format, validation, summary, the long tail and the object sizes.
3. The annotators' ceiling: the re-annotation compared with its original (``ceiling.json``).
4. With PyTorch: a short training of the compact baseline with uniform and with repeat-factor
   sampling, each evaluated on the validation split by training frequency against the ceiling.
   Without it, one line says what was skipped and how to install it.
5. The HTML report of all of it (``report.html``).
"""

from __future__ import annotations

import contextlib
import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from . import __version__
from .convert import convert, remove_path
from .errors import OutputExistsError
from .summary import summarize
from .validate import validate

#: the file that marks a folder as written by ``segdata demo`` (what a rerun may replace)
MARKER = ".segdata-demo"
#: what the demo writes under ``--out``, and nothing else (besides the marker)
ENTRIES = (
    "source",
    "ade20k-unified",
    "consistency-unified",
    "ceiling.json",
    "consistency.json",
    "runs",
    "eval",
    "report.html",
)
#: the two trainings the demo compares (``segdata train --sampler`` and ``--loss``): the tail-aware
#: one also weighs the loss by effective number (Cui et al.), since repeating images alone barely
#: changes the share of rare pixels the loss sees (benchmarks/RESULTS.md, the tail benchmark)
SAMPLERS = ("uniform", "repeat-factor")
LOSSES = {"uniform": "ce", "repeat-factor": "class-balanced"}
#: the repeat-factor threshold t of the demo: LVIS's 0.001 is for 100k images; on a few hundred, a
#: class in 1 of 200 training images needs t = 0.1 to repeat sqrt(0.1 * 200) = 4.5 times
REPEAT_THRESHOLD = 0.1
TORCH_HINT = "pip install 'segdata[torch]'"


def run_demo(
    out: str | Path,
    *,
    n_images: int = 240,
    n_consistency: int = 24,
    n_classes: int = 30,
    image_size: tuple[int, int] = (128, 128),
    iters: int = 120,
    train: bool = True,
    workers: int | None = None,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
    step: Callable[[str], None] | None = None,
    overwrite: bool = False,
) -> dict:
    """Run the demo into the folder ``out`` and return what it found.

    The demo writes :data:`ENTRIES` and the marker file :data:`MARKER` under ``out`` (created if
    need be) and nothing else. A rerun into a folder the demo wrote (the marker is there) replaces
    them; an entry in a folder without the marker belongs to someone else and is replaced only with
    ``overwrite`` (other files in ``out`` are never touched). When the run fails, what it wrote is
    removed.

    Raises
    ------
    OutputExistsError
        ``out`` exists and is not a folder, or one of the entries is there, was not written by the
        demo and ``overwrite`` is false.

    Returns
    -------
    dict
        ``source`` (generated ADE20K root), ``dataset`` (unified output), ``convert_seconds``,
        ``validation`` (list of findings, empty when valid), ``summary`` (see
        :func:`segdata.summary.summarize`), ``longtail`` and ``small_objects`` (the headline
        figures of those analyses), ``consistency`` (the simulated re-annotation of
        ``n_consistency`` images: measured agreement and breakdown next to the generator's exact
        edits and the published ADE20K figures, and the ceiling file), ``training`` (per sampler:
        the run folder, seconds, first and last loss; or ``skipped`` with the reason),
        ``evaluation`` (per sampler: mIoU and the buckets next to the ceiling, the JSON file),
        ``report`` (the HTML file).

    ``step(text)`` is called as each stage starts; ``progress(done, total)`` within stages.
    """
    out = Path(out)
    if (out.exists() or out.is_symlink()) and not out.is_dir():
        raise OutputExistsError(f"{out} exists and is not a folder; give --out a folder (new or the demo's own)")
    created = not out.exists()
    marked = (out / MARKER).is_file()
    present = [out / name for name in ENTRIES if (out / name).exists() or (out / name).is_symlink()]
    if present and not marked and not overwrite:
        raise OutputExistsError(
            f"{present[0]} exists and was not written by segdata demo; pass --overwrite to replace it "
            "(or choose another --out)"
        )
    out.mkdir(parents=True, exist_ok=True)
    try:
        if not marked:
            (out / MARKER).write_text(json.dumps({"written_by": "segdata demo", "segdata_version": __version__}) + "\n")
        for path in present + _partials(out):
            remove_path(path)
        options = {"n_classes": n_classes, "image_size": image_size, "iters": iters, "train": train}
        return _run(out, n_images, n_consistency, workers, seed, progress, step or (lambda _text: None), options)
    except BaseException:
        # leave nothing half-written: what this run wrote goes (and the folder, when it made it)
        with contextlib.suppress(OSError):
            if created:
                shutil.rmtree(out)
            else:
                for path in [out / name for name in ENTRIES] + _partials(out):
                    remove_path(path)
                if not marked:
                    (out / MARKER).unlink(missing_ok=True)
        raise


def _partials(out: Path) -> list[Path]:
    """The temporary siblings that segdata's writers leave while they run (an interrupted
    conversion's ``.segdata-partial``), for the demo's entries."""
    names = [name + suffix for name in ENTRIES for suffix in (".segdata-partial", ".segdata-old")]
    return [out / name for name in names if (out / name).exists() or (out / name).is_symlink()]


def _run(out: Path, n_images, n_consistency, workers, seed, progress, step, options) -> dict:
    from .analyses import longtail, small_objects
    from .converters import ade20k
    from .format import Dataset
    from .synthetic import synthesize_ade20k

    timings: dict[str, float] = {}
    clock = [time.perf_counter()]

    def lap(name: str) -> None:
        now = time.perf_counter()
        timings[name] = round(now - clock[0], 3)
        clock[0] = now

    step("generating a learnable synthetic ADE20K")
    made = synthesize_ade20k(
        out / "source",
        n_images,
        n_classes=options["n_classes"],
        image_size=options["image_size"],
        seed=seed,
        n_consistency=n_consistency,
        workers=workers,
        overwrite=True,
        progress=progress,
    )
    lap("generate")
    dataset_dir = out / "ade20k-unified"
    step("converting")
    start = time.perf_counter()
    convert(ade20k, made.release, dataset_dir, workers=workers, name="demo", progress=progress)
    seconds = time.perf_counter() - start
    findings = validate(dataset_dir, workers=workers)
    ds = Dataset(dataset_dir)
    lap("convert")
    step("measuring the long tail and the object sizes")
    tail_result = longtail.analyze(ds, bootstrap=50)
    size_result = small_objects.analyze(ds, workers=workers)
    tail, sizes = tail_result.to_dict(), size_result.to_dict()
    lap("analyses")
    result = {
        "source": str(made.release),
        "dataset": str(dataset_dir),
        "generated": made.as_dict(),
        "convert_seconds": round(seconds, 3),
        "validation": [f.as_dict() for f in findings],
        "summary": summarize(dataset_dir),
        "longtail": {
            "classes_for_coverage": tail["classes_for_coverage"],
            # a fit needs enough classes: None (and the fit's "error") on a tiny demo
            "powerlaw": {
                **{k: tail["powerlaw"].get(k) for k in ("alpha", "xmin", "rank_exponent", "ks", "p_value")},
                **({"error": tail["powerlaw"]["error"]} if "error" in tail["powerlaw"] else {}),
            },
            "gini": tail["gini"],
            "buckets": tail["buckets"],
        },
        "small_objects": {k: sizes[k] for k in ("unit", "objects", "size_buckets", "below_stride")},
        "consistency": None,
        "training": {},
        "evaluation": {},
    }
    if made.consistency is not None:
        step("comparing the re-annotation (the annotators' ceiling)")
        result["consistency"] = _consistency(out, made, workers, seed)
        lap("consistency")
    ceiling = out / "ceiling.json" if result["consistency"] else None
    evals = {}
    if options["train"]:
        evals = _train_and_evaluate(out, ds, result, ceiling, options["iters"], workers, seed, step, progress)
        lap("train_and_evaluate")
    else:
        result["training"] = {"skipped": "--no-train"}
    step("writing the report")
    from .render.report import write_report

    consistency_json = out / "consistency.json" if result["consistency"] else None
    write_report(
        out / "report.html",
        ds,
        consistency=consistency_json,
        evals=evals,
        workers=workers,
        longtail=tail_result,
        sizes=size_result,
    )
    lap("report")
    result["report"] = str(out / "report.html")
    result["seconds"] = timings
    return result


def _train_and_evaluate(out: Path, ds, result: dict, ceiling, iters: int, workers, seed, step, progress) -> dict:
    """Train the compact baseline with each sampler and evaluate it by frequency against the
    ceiling; returns ``{sampler: eval JSON path}``. Without PyTorch, records why and returns {}."""
    try:
        import torch  # noqa: F401
    except ImportError:
        result["training"] = {"skipped": f"PyTorch is not installed: {TORCH_HINT}"}
        return {}
    from .eval import evaluate_model
    from .torch.train import train

    evals = {}
    (out / "eval").mkdir(exist_ok=True)
    for sampler in SAMPLERS:
        step(f"training the baseline, {sampler} sampling ({iters} iterations)")
        run = train(
            ds,
            out / "runs" / sampler,
            model="deeplab-small",
            sampler=sampler,
            loss=LOSSES[sampler],
            iters=iters,
            batch_size=8,
            crop=96,
            lr=0.02,
            workers=0,
            seed=seed,
            repeat_threshold=REPEAT_THRESHOLD,
            overwrite=True,
            progress=(lambda i, n, loss: progress(i, n)) if progress else None,
        )
        result["training"][sampler] = {
            "run": str(run.out),
            "loss": LOSSES[sampler],
            "seconds": round(run.seconds, 3),
            "loss_first": run.loss_first,
            "loss_last": run.loss_last,
            "images_per_second": run.images_per_second,
        }
        step(f"evaluating the {sampler} model by training frequency")
        scored = evaluate_model(
            ds,
            str(run.checkpoint),
            split="val",
            by_frequency=True,
            ceiling=ceiling,
            bootstrap=200,
            seed=seed,
            batch_size=8,
            workers=0,
        )
        report = scored.to_dict()
        path = out / "eval" / f"{sampler}.json"
        path.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
        evals[sampler] = path
        result["evaluation"][sampler] = {
            "file": str(path),
            "miou": report["miou"],
            "ci": report["ci"]["miou"],
            "buckets": {
                b["name"]: {k: b.get(k) for k in ("miou", "ci", "ceiling_miou", "classes", "classes_present")}
                for b in report["buckets"]
            },
            "ceiling_miou": (report.get("ceiling") or {}).get("miou"),
        }
    return evals


def _consistency(out: Path, made, workers: int | None, seed: int) -> dict:
    """The simulated re-annotation: convert, compare; the figures, the report and the ceiling file."""
    from .analyses import consistency
    from .converters import ade20k

    generated = made.consistency
    dataset_dir = out / "consistency-unified"
    convert(ade20k, generated.path, dataset_dir, workers=workers, name="demo-consistency")
    result = consistency.compare(dataset_dir, layers="objects,reannotation", workers=workers, bootstrap=200, seed=seed)
    ceiling = consistency.write_ceiling(out / "ceiling.json", result)
    (out / "consistency.json").write_text(json.dumps(result.report(), indent=1) + "\n", encoding="utf-8")
    return {
        "dataset": str(dataset_dir),
        "images": len(generated.images),
        "pixel_agreement": result.figures["pixel_agreement"],
        "miou": result.figures["miou"],
        "breakdown": {c: result.breakdown[c] for c in consistency.CATEGORIES},
        "generator": {"pixel_agreement": generated.agreement, **generated.fractions()},
        "published": dict(consistency.ADE20K_REFERENCE),
        "ceiling": str(ceiling),
    }
