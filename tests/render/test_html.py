"""The HTML report (`segdata report`) and the notebook cards: sections, figures checked against
counts made here from the tables, well-formed markup, no URL, the command's errors."""

from __future__ import annotations

import base64
import io
import json
import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from PIL import Image

from segdata.analyses import longtail as lt
from segdata.cli import main
from segdata.metrics import scores
from segdata.render import html as H
from segdata.render.report import SECTIONS, build_page, build_report, write_report

from .conftest import CONSISTENCY_SIZE

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


def section_of(document: str, key: str) -> str:
    match = re.search(rf'<section id="{key}">.*?</section>', document, flags=re.S)
    assert match, f"no section {key}"
    return match.group(0)


def kpi(document: str, label: str) -> str:
    """The value of the headline box labelled ``label``."""
    match = re.search(rf"<b>([^<]*)</b><span>{re.escape(label)}</span>", document)
    assert match, f"no headline {label!r}"
    return match.group(1)


def objects_segments(ds) -> pd.DataFrame:
    seg = pd.read_parquet(ds.path / "segments.parquet")
    return seg[seg["layer"] == "objects"]


# --------------------------------------------------------------------------- content


def test_sections_in_order(full_report):
    headings = re.findall(r'<section id="([^"]+)"><h2>([^<]+)</h2>', full_report.html)
    assert headings == list(SECTIONS.items())
    assert full_report.sections == list(SECTIONS)


def test_dataset_card_counts(full_report, report_data):
    ds = report_data["dataset"]
    images = pd.read_parquet(ds.path / "images.parquet")
    classes = pd.read_parquet(ds.path / "classes.parquet")
    card = section_of(full_report.html, "dataset")
    assert kpi(card, "images") == f"{len(images):,}"
    assert kpi(card, "classes in the class table") == f"{len(classes):,}"
    assert kpi(card, "segments") == f"{len(pd.read_parquet(ds.path / 'segments.parquet')):,}"
    for split, n in images["split"].value_counts().items():
        assert f'<td>{split}</td><td class="num">{n:,}</td>' in card
    assert "<td>ade20k</td>" in card and "<td>2021_17_01</td>" in card
    for layer in ("objects", "parts-1"):
        assert f"<td>{layer}</td>" in card


def test_longtail_figures_counted_from_the_segment_table(full_report, report_data):
    ds = report_data["dataset"]
    classes = pd.read_parquet(ds.path / "classes.parquet")
    keep = set(classes.loc[~classes["ignore"].fillna(False).astype(bool), "class_id"])
    seg = objects_segments(ds)
    pixels = seg[seg["class_id"].isin(keep)].groupby("class_id")["area"].sum()
    pixels = np.sort(pixels[pixels > 0].to_numpy())[::-1]
    share = np.cumsum(pixels) / pixels.sum()
    section = section_of(full_report.html, "longtail")
    assert kpi(section, "classes present / in the table") == f"{len(pixels):,} / {len(keep):,}"
    freq = lt.class_frequencies(ds)
    for f in (0.9, 0.95, 0.99):
        k = int(np.argmax(share >= f - 1e-12)) + 1  # the smallest k reaching f
        assert k == lt.classes_for_coverage(freq, f)
        assert kpi(section, f"classes for {f:.0%} of the pixels") == str(k)
        assert f"{f:.0%}: k={k}" in section  # the label on the coverage curve (text kept as SVG text)
    # the head table starts with the class of most pixels
    top = classes.set_index("class_id").loc[seg.groupby("class_id")["area"].sum().idxmax(), "name"]
    head = re.search(r"<caption>Head:.*?</table>", section, flags=re.S).group(0)
    assert re.search(r'<td class="num">1</td><td>([^<]+)</td>', head).group(1) == top
    assert "power law, alpha=" in section  # the fitted law is drawn on the rank-frequency plot


def test_small_objects_shares_counted_from_the_segment_table(full_report, report_data):
    seg = objects_segments(report_data["dataset"])
    areas = seg.loc[seg["is_instance"].astype(bool) & (seg["area"] > 0), "area"].to_numpy()
    section = section_of(full_report.html, "small_objects")
    assert kpi(section, "instances") == f"{len(areas):,}"
    for s in (8, 16, 32):
        assert kpi(section, f"below one stride-{s} cell ({s * s} px)") == f"{100 * np.mean(areas < s * s):.1f}%"
    assert kpi(section, "small (COCO)") == f"{100 * np.mean(areas < 1024):.1f}%"
    assert "The classes most often tiny" in section
    # objects per LVIS bucket of their class (training images 1-10 rare, 11-100 common), in rule order
    ds = report_data["dataset"]
    images = pd.read_parquet(ds.path / "images.parquet")
    train = set(images.loc[images["split"] == "train", "image_id"])
    present = seg[(seg["area"] > 0) & seg["image_id"].isin(train)]
    train_images = present.groupby("class_id")["image_id"].nunique()
    visible = seg[seg["is_instance"].astype(bool) & (seg["area"] > 0)]
    n_train = visible["class_id"].map(train_images).fillna(0)
    expected = {
        "rare": int(((n_train >= 1) & (n_train <= 10)).sum()),
        "common": int(((n_train > 10) & (n_train <= 100)).sum()),
        "frequent": int((n_train > 100).sum()),
        "absent": int((n_train == 0).sum()),
    }
    table = re.search(r"<caption>Sizes per frequency bucket</caption>.*?</table>", section, flags=re.S).group(0)
    rows = re.findall(r'<tr><td>(\w+)</td><td class="num">([\d,]+)</td>', table)
    assert rows == [(name, f"{n:,}") for name, n in expected.items() if n]


def test_consistency_figures_and_overlays(full_report, report_data):
    report = report_data["consistency_report"]
    section = section_of(full_report.html, "consistency")
    assert kpi(section, "pixel agreement") == f"{100 * report['pixel_agreement']:.1f}%"
    assert kpi(section, "mIoU of B against A (the ceiling)") == f"{report['miou']:.3f}"
    images = re.findall(r'<img src="data:image/png;base64,([^"]+)" alt="([^"]+)"', section)
    drawn = [alt.split()[0] for _, alt in images if alt.endswith("disagreement")]
    worst = sorted(report["per_image"], key=lambda p: (p["pixel_agreement"], p["image_id"]))
    assert drawn == [p["image_id"] for p in worst[:3]]
    # the naming pixels drawn in each disagreement image equal the counting kernel's breakdown
    naming = tuple(round(255 * c) for c in (0.85, 0.1, 0.55))
    per_image = {p["image_id"]: p for p in report["per_image"]}
    for data, alt in images:
        rgb = np.asarray(Image.open(io.BytesIO(base64.b64decode(data))).convert("RGB"))
        assert rgb.shape[:2] == CONSISTENCY_SIZE
        if alt.endswith("disagreement"):
            p = per_image[alt.split()[0]]
            assert int((rgb == naming).all(axis=2).sum()) == round(p["naming"] * p["compared"])


def test_consistency_result_drawn_as_its_report(full_report, report_data):
    """A ConsistencyResult passed in (its own lookup tables) draws the images the JSON report's
    datasets, opened again, give."""
    from segdata.analyses import consistency

    result = consistency.compare(report_data["root"] / "consistency", bootstrap=0, workers=1)
    document = build_report(report_data["dataset"], result, bootstrap=0, workers=1)
    pattern = r'<img src="data:image/png;base64,[^"]+" alt="[^"]+"'
    drawn = re.findall(pattern, section_of(document, "consistency"))
    assert len(drawn) == 9 and drawn == re.findall(pattern, section_of(full_report.html, "consistency"))


def test_consistency_without_its_datasets(report_data, tmp_path):
    report = dict(report_data["consistency_report"])
    report["a"] = {**report["a"], "path": str(tmp_path / "gone")}
    report["b"] = {**report["b"], "path": str(tmp_path / "gone")}
    document = build_report(report_data["dataset"], report, bootstrap=0, workers=1, longtail=None, overlays=2)
    section = section_of(document, "consistency")
    assert "<img" not in section and "could not be opened again" in section
    assert kpi(section, "pixel agreement") == f"{100 * report['pixel_agreement']:.1f}%"


def test_evaluation_columns(full_report, report_data):
    section = section_of(full_report.html, "evaluation")
    reports = [json.loads(p.read_text()) for p in report_data["evals"]]
    for label in ("uniform", "repeat-factor"):
        assert f'<th class="num">{label}: mIoU</th>' in section
    table = re.search(r"<caption>mIoU per frequency bucket.*?</table>", section, flags=re.S).group(0)
    for bucket in reports[0]["buckets"]:
        row = re.search(rf"<tr><td>{bucket['name']}</td>.*?</tr>", table).group(0)
        for r in reports:
            b = next(x for x in r["buckets"] if x["name"] == bucket["name"])
            assert f"{b['miou']:.3f}" in row
        assert f'<td class="num">{bucket["ceiling_miou"]:.3f}</td>' in row
    assert "annotator ceiling" in section and "recall by object size" in section


# --------------------------------------------------------------------------- markup


class Balance(HTMLParser):
    def __init__(self):
        super().__init__()
        self.stack: list[str] = []
        self.errors: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
        else:
            self.stack.pop()


def test_markup_well_formed(full_report):
    document = full_report.html
    parser = Balance()
    parser.feed(document)
    parser.close()
    assert parser.errors == [] and parser.stack == []
    svgs = re.findall(r"<svg\b.*?</svg>", document, flags=re.S)
    assert len(svgs) == 11  # long tail 3, small objects 3, consistency 2, evaluation 3
    ids = []
    for s in svgs:
        root = ET.fromstring(s)
        assert root.tag == "svg" and root.get("viewBox") and root.find("title") is not None
        ids += [e.get("id") for e in root.iter() if e.get("id")]
        assert len(list(root.iter())) > 20  # something drawn
    assert len(ids) == len(set(ids))  # no id twice on the page
    images = re.findall(r'<img src="data:image/png;base64,([^"]+)"', document)
    assert len(images) == 9  # 3 images x (A, B, disagreement)
    for data in images:
        with Image.open(io.BytesIO(base64.b64decode(data))) as im:
            im.load()
            assert im.format == "PNG" and im.width > 0 and im.height > 0


def test_no_url(full_report):
    document = full_report.html
    assert "http://" not in document and "https://" not in document and "@import" not in document
    for value in re.findall(r'\b(?:src|href)\s*=\s*"([^"]*)"', document):
        assert value.startswith(("data:image/png;base64,", "#")), value
    for value in re.findall(r"url\(([^)]*)\)", document):
        assert value.startswith("#"), value
    assert "<script" not in document and "<link" not in document
    assert "@media print" in document


def test_deterministic(full_report, report_data):
    again = build_page(
        report_data["dataset"], report_data["consistency"], report_data["evals"], bootstrap=20, workers=1
    )
    assert again.html == full_report.html


def test_write_report(report_data, tmp_path):
    target = tmp_path / "r.html"
    built = write_report(target, report_data["dataset"], bootstrap=0, workers=1)
    assert built.path == target and target.read_text(encoding="utf-8") == built.html
    assert built.sections == ["dataset", "longtail", "small_objects"]
    assert "Annotation consistency" not in built.html and "<h2>Evaluation" not in built.html
    assert [p.name for p in tmp_path.iterdir()] == ["r.html"]


def test_svg_ids_prefixed():
    from matplotlib.figure import Figure

    fig = Figure(figsize=(2, 2))
    fig.subplots().plot([0, 1], [1, 0], "o")
    text = H.svg(fig, "a <plot>")
    root = ET.fromstring(text)
    refs = re.findall(r'href="#([^"]+)"|url\(#([^)]+)\)', text)
    ids = {e.get("id") for e in root.iter()}
    assert refs and all((a or b) in ids for a, b in refs)  # every reference resolves in the plot itself
    assert root.get("aria-label") == "a <plot>" and "xmlns" not in text


# --------------------------------------------------------------------------- notebook cards


def test_dataset_repr_html(report_data):
    ds = report_data["dataset"]
    card = ds._repr_html_()
    images = pd.read_parquet(ds.path / "images.parquet")
    assert f">{len(images):,}</td>" in card
    assert f">{len(pd.read_parquet(ds.path / 'classes.parquet')):,}</td>" in card
    assert ">ade20k ade20k-2021 2021_17_01</td>" in card
    assert ", ".join(f"{k} {v}" for k, v in sorted(images["split"].value_counts().items())) in card


def test_scores_repr_html():
    # class 0: TP 5, FN 1, FP 2 -> 5/8; class 1: TP 3, FN 2 + 1 missed, FP 1 -> 3/7
    matrix = np.array([[5, 1, 0], [2, 3, 1]])
    card = scores(matrix)._repr_html_()
    assert f">{(5 / 8 + 3 / 7) / 2:.3f}</td>" in card  # mIoU
    assert ">66.7%</td>" in card  # pixel accuracy 8 / 12
    assert f"class 1 {3 / 7:.2f}, class 0 {5 / 8:.2f}" in card


def test_result_cards(report_data):
    from segdata.analyses import consistency, small_objects

    ds = report_data["dataset"]
    tail = lt.analyze(ds, bootstrap=0)
    freq = tail.frequencies
    assert f">{lt.classes_for_coverage(freq, 0.9)} / " in tail._repr_html_()
    sizes = small_objects.analyze(ds, workers=1)
    assert f">{sizes.overall['objects']:,}</td>" in sizes._repr_html_()
    result = consistency.compare(report_data["root"] / "consistency", bootstrap=0, workers=1)
    assert f">{100 * result.figures['pixel_agreement']:.1f}%" in result._repr_html_()


# --------------------------------------------------------------------------- command line


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_cli_json(report_data, tmp_path):
    out = tmp_path / "report.html"
    evals = [x for p in report_data["evals"] for x in ("--eval", p)]
    result = run(
        "report",
        report_data["dataset"].path,
        "--consistency",
        report_data["consistency"],
        *evals,
        "--bootstrap",
        "0",
        "--workers",
        "1",
        "-o",
        out,
        "--json",
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"report": str(out), "sections": list(SECTIONS)}
    assert "<h2>Evaluation</h2>" in out.read_text(encoding="utf-8")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html"]


@pytest.mark.parametrize(
    "option,content,message",
    [
        ("--eval", None, "no such file"),
        ("--eval", "{not json", "not JSON"),
        ("--eval", '{"miou": 0.5}', "missing per_class, buckets"),
        ("--eval", "[1, 2]", "a JSON object was expected"),
        ("--consistency", None, "no such file"),
        ("--consistency", '{"a": 1}', "missing b, images"),
    ],
)
def test_cli_bad_input_file(report_data, tmp_path, option, content, message):
    bad = tmp_path / "input.json"
    if content is not None:
        bad.write_text(content)
    out = tmp_path / "report.html"
    result = run("report", report_data["dataset"].path, option, bad, "-o", out)
    assert result.exit_code == 1
    said = " ".join(result.output.split())
    assert said.startswith(f"error: {bad}: ") and message in said
    assert "Traceback" not in result.output and not out.exists()


def test_cli_errors(report_data, tmp_path):
    result = run("report", tmp_path / "nothing", "-o", tmp_path / "r.html")
    assert result.exit_code == 1 and "no segdata.json" in result.output
    result = run("report", report_data["dataset"].path, "-o", tmp_path / "no" / "r.html")
    assert result.exit_code == 1 and f"{tmp_path / 'no'}: no such folder" in " ".join(result.output.split())
    result = run("report", report_data["dataset"].path)
    assert result.exit_code == 2 and "--output" in result.output
    result = run("report", report_data["dataset"].path, "--buckets", "nonsense", "-o", tmp_path / "r.html")
    assert result.exit_code == 2
    assert not (tmp_path / "r.html").exists()


def test_cli_help_has_an_example():
    result = run("report", "--help")
    assert result.exit_code == 0 and "segdata report ade-full" in result.output and "--eval" in result.output


def test_evaluation_with_the_required_keys_only():
    """A report without ceiling, intervals, buckets or size recall still renders: what it has."""
    from segdata.render.report.evaluation import evaluation_section

    minimal = {"miou": 0.25, "per_class": [{"class_id": 3, "name": "cat", "iou": 0.25, "present": True}], "buckets": []}
    section = evaluation_section([("only", minimal)])
    assert '<td class="num">0.250</td>' in section and "<td>cat</td>" in section
    assert "recall by object size" not in section


def test_report_of_the_eval_engine(report_data, tmp_path):
    """`segdata eval --out` feeds `segdata report`: predictions equal to the ground truth except
    one rare class never predicted score 1 in every bucket but rare, (R - 1) / R there."""
    pytest.importorskip("segdata.eval")
    ds = report_data["dataset"]
    seg = objects_segments(ds)
    images = pd.read_parquet(ds.path / "images.parquet")
    train = images.loc[images["split"] == "train", "image_id"]
    in_train = seg[seg["image_id"].isin(set(train)) & (seg["area"] > 0)]
    train_images = in_train.groupby("class_id")["image_id"].nunique()
    rare = sorted(train_images[(train_images >= 1) & (train_images <= 10)].index)
    erased = rare[0]
    preds = tmp_path / "preds"
    preds.mkdir()
    for image_id in train:
        semantic = ds.semantic(image_id)
        semantic[semantic == erased] = 0  # no prediction
        Image.fromarray(semantic.astype(np.uint16)).save(preds / f"{image_id}.png")
    out = tmp_path / "eval.json"
    result = run(
        "eval",
        ds.path,
        "--pred",
        preds,
        "--pred-ids",
        "unified",
        "--split",
        "train",
        "--by-frequency",
        "--bootstrap",
        "0",
        "--workers",
        "1",
        "--out",
        out,
    )
    assert result.exit_code == 0, result.output
    document = build_report(ds, evals=[out], bootstrap=0, workers=1)
    table = re.search(r"<caption>mIoU per frequency bucket.*?</table>", section_of(document, "evaluation"), re.S)
    cells = dict(
        re.findall(
            r'<tr><td>(\w+)</td><td class="num">[^<]*</td><td class="num">[^<]*</td>'
            r'<td class="num">([^<]*)</td>',
            table.group(0),
        )
    )
    assert cells["rare"] == f"{(len(rare) - 1) / len(rare):.3f}"
    assert all(v == "1.000" for k, v in cells.items() if k not in ("rare", "absent", "unseen") and v != "n/a")


def test_evaluation_card(report_data):
    report = json.loads(report_data["evals"][0].read_text())
    card = H.evaluation_card(report)
    assert f">{report['miou']:.3f} [{report['ci']['miou'][0]:.3f}, {report['ci']['miou'][1]:.3f}]</td>" in card
    for b in report["buckets"]:
        if b["miou"] is not None:
            assert f">{b['miou']:.3f} (ceiling {b['ceiling_miou']:.3f})</td>" in card


def test_names_are_escaped(report_data, tmp_path):
    """A dataset or class name is text, never markup (in tables, headings and plots)."""
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(report_data["dataset"].path, copy)
    manifest = json.loads((copy / "segdata.json").read_text())
    manifest["name"] = "<script>alert(1)</script>"
    (copy / "segdata.json").write_text(json.dumps(manifest))
    classes = pd.read_parquet(copy / "classes.parquet")
    seg = objects_segments(report_data["dataset"])
    top = seg.groupby("class_id")["area"].sum().idxmax()
    classes.loc[classes["class_id"] == top, "name"] = "wall & <i>floor</i>"
    classes.to_parquet(copy / "classes.parquet")
    import segdata

    document = build_report(segdata.open(copy), bootstrap=0, workers=1)
    assert "<script" not in document and "<i>" not in document
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in document and "wall &amp; &lt;i&gt;floor&lt;/i&gt;" in document
    for s in re.findall(r"<svg\b.*?</svg>", document, flags=re.S):
        ET.fromstring(s)  # the name in a plot's title is escaped there too
