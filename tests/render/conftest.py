"""Generated data for the report's tests: a small ADE20K-layout dataset, a consistency set with a
simulated re-annotation (its `analyze consistency --json` report) and two hand-made evaluations."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

import segdata
from segdata.cli import main
from segdata.convert import convert
from segdata.converters import ade20k
from segdata.synthetic import generate_ade20k_2021, generate_ade20k_consistency

from .evalfiles import write_eval

#: the consistency set's image size: small enough that the overlays are drawn at full size
CONSISTENCY_SIZE = (240, 320)


@pytest.fixture(scope="session")
def report_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("report-data")
    release = generate_ade20k_2021(root / "source", 16, image_size=(240, 320), n_classes=120, seed=3)
    convert(ade20k, release, root / "unified", workers=1, name="generated")
    ds = segdata.open(root / "unified")
    generated = generate_ade20k_consistency(
        root / "consistency-source", 3, image_size=CONSISTENCY_SIZE, n_classes=80, parts=False, seed=5
    )
    convert(ade20k, generated.path, root / "consistency", workers=1, name="generated-consistency")
    result = CliRunner().invoke(
        main,
        [
            "analyze",
            "consistency",
            str(root / "consistency"),
            "--layers",
            "objects,reannotation",
            "--bootstrap",
            "50",
            "--workers",
            "1",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    consistency = root / "consistency.json"
    consistency.write_text(result.stdout)
    uniform = write_eval(root / "uniform.json", ds, strength=0.5, seed=0, name="uniform")
    repeat = write_eval(root / "repeat-factor.json", ds, strength=0.8, seed=1, ceiling=0.75, name="rfs")
    return {
        "root": root,
        "dataset": ds,
        "consistency": consistency,
        "consistency_report": json.loads(consistency.read_text()),
        "evals": [uniform, repeat],
    }


@pytest.fixture(scope="session")
def full_report(report_data):
    """The report with every section: (html, sections)."""
    from segdata.render.report import build_page

    built = build_page(
        report_data["dataset"], report_data["consistency"], report_data["evals"], bootstrap=20, workers=1
    )
    return built
