# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Choosing a benchmark vocabulary by pixel coverage
#
# Full ADE20K names thousands of classes, most of them seen a handful of times. The SceneParsing
# benchmark (ADEChallengeData2016) kept the **150 classes with the most pixels**: together they
# cover 92.75% of all labelled pixels, and everything else became "other" (ignored in training and
# evaluation). This notebook applies the same rule to a full ADE20K conversion:
#
# 1. generate a small synthetic release in the ADE20K 2021 layout (swap in your own
#    `ADE20K_2021_17_01` folder: nothing below depends on the data being synthetic);
# 2. convert it to segdata's unified format;
# 3. measure per-class pixel frequencies and the coverage curve;
# 4. pick the vocabulary (top K, or the fewest classes reaching a coverage), write `vocab.json`;
# 5. export label PNGs in that vocabulary, ready for mmsegmentation or detectron2.
#
# Run it as a script (`python examples/choose_vocabulary.py`) or open it as a notebook
# (`jupytext --to notebook examples/choose_vocabulary.py`).

# %%
import os
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from PIL import Image

import segdata
from segdata.analyses import longtail
from segdata.analyses.vocabulary import build_vocabulary
from segdata.convert import convert
from segdata.converters import ade20k, label_png
from segdata.synthetic import generate_ade20k_2021
from segdata.vocab import read_vocab

try:  # a rich table in a notebook, plain text in a terminal
    from IPython.display import display
except ImportError:
    display = print

# Everything is written here (never into the repository); set SEGDATA_EXAMPLE_OUT to keep it.
OUT = Path(os.environ.get("SEGDATA_EXAMPLE_OUT") or tempfile.mkdtemp(prefix="segdata-vocabulary-"))
OUT.mkdir(parents=True, exist_ok=True)
N_IMAGES = 60  # a real full ADE20K has 27,574; a few dozen keep this example under a minute
N_CLASSES = 300  # classes the generator draws from (power-law frequencies, ADE20K's names)
TARGET = 0.95  # pixel coverage the vocabulary must reach (SceneParsing's 150 reach 0.9275)
print("writing into", OUT)

# %% [markdown]
# ## 1. A full ADE20K release, converted
#
# The generator writes the exact on-disk layout of `ADE20K_2021_17_01` (images, `_seg.png`
# class/instance masks, the index). `convert` reads it into the unified format: three parquet
# tables (classes, images, segments) and one segment-id PNG per image.

# %%
release = generate_ade20k_2021(
    OUT / "source", N_IMAGES, image_size=((240, 320), (360, 480)), n_classes=N_CLASSES, parts=False, seed=0
)
report = convert(ade20k, release, OUT / "ade-full", name="ade-full", overwrite=True)
ds = segdata.open(OUT / "ade-full")
print(ds)
print(f"{report.images} images, {report.classes} classes, {report.segments} segments")

# %% [markdown]
# ## 2. How long is the tail?
#
# `class_frequencies` counts, per class, its pixels, its share of the labelled pixels (unlabeled
# pixels and classes flagged ignore left out), the images it appears in and its rank. We count on
# the **training split only**: a vocabulary chosen by looking at the validation set would leak
# it into the benchmark's design.

# %%
freq = longtail.class_frequencies(ds, split="train")
present = freq[freq["pixels"] > 0]
print(f"{len(present)} classes have pixels in the training split")
display(freq.head(10)[["rank", "name", "pixels", "pixel_share", "images"]])
display(freq[freq["pixels"] > 0].tail(5)[["rank", "name", "pixels", "pixel_share", "images"]])

# %% [markdown]
# The coverage curve: the share of labelled pixels that the top-k classes hold. The number of
# classes needed to reach 90, 95 and 99% of the pixels is the question a benchmark designer asks.

# %%
cov = longtail.coverage(freq)
reach = {f: longtail.classes_for_coverage(freq, f) for f in (0.9, 0.9275, 0.95, 0.99)}
for fraction, k in reach.items():
    print(f"{fraction:7.2%} of pixels: top {k:4d} of {len(present)} classes")

fig, ax = plt.subplots(figsize=(6, 4))
ax.plot(cov["k"], cov["pixel_share"] * 100)
for (fraction, k), color in zip(reach.items(), ("tab:green", "tab:gray", "tab:red", "tab:purple")):
    ax.axvline(k, color=color, ls="--", lw=1, label=f"{fraction:.2%}: k = {k}")
ax.set_xscale("log")
ax.set_xlabel("top-k classes by pixels")
ax.set_ylabel("% of labelled pixels covered")
ax.set_title("pixel coverage of the training split")
ax.legend()
fig.savefig(OUT / "coverage.png", dpi=100)

# %% [markdown]
# ## 3. The vocabulary
#
# `build_vocabulary` keeps the fewest classes whose pixels reach `TARGET` (or `top=K`, the
# SceneParsing rule with K = 150). `min_images` would further drop classes seen in too few images
# to be learnable (and measurable: a class in two validation images has an IoU that is mostly
# noise). Train ids are `0..K-1` in rank order; every other class becomes the ignore index (255).

# %%
vocab, vocab_report = build_vocabulary(ds, coverage=TARGET, split="train")
vocab_path = vocab.to_file(OUT / "vocab.json")
print(f"{vocab.num_classes} classes cover {vocab_report['pixel_coverage']:.2%} of the training pixels")
print(
    f"dropped: {vocab_report['classes_dropped']} classes, {vocab_report['pixels_dropped_share']:.2%} of the pixels; "
    f"largest dropped: {', '.join(d['name'] for d in vocab_report['largest_dropped'][:5])}"
)
print("first train ids:", vocab.names[:8])
print("written", vocab_path)

# %% [markdown]
# The same with a fixed size, the SceneParsing way. With a small dataset "top 150" is most
# of what there is; on the real full ADE20K it is 150 of 3,688 classes.

# %%
for k in (25, 50, 100):
    _, r = build_vocabulary(ds, top=k, split="train")
    print(f"top {k:3d}: {r['pixel_coverage']:.2%} of the training pixels")

# %% [markdown]
# ## 4. Evaluate-ready: label PNGs in that vocabulary
#
# `label_png.write` (the CLI's `segdata export --to label-png --vocab vocab.json`) writes one
# 8-bit PNG per image, pixel = train id, 255 = ignore (the classes outside the vocabulary and
# unlabeled pixels), in mmsegmentation's `img_dir/ann_dir` layout with the vocabulary next to it.

# %%
export = label_png.write(ds, OUT / "ade-top", vocab=vocab, images="none", overwrite=True)
print(f"{export['images']} label PNGs, {export['num_classes']} classes, ignore_index {export['ignore_index']}")
labelled = sum(export["pixels_per_train_id"])
print(f"{export['ignored_pixels'] / (labelled + export['ignored_pixels']):.1%} of all pixels are ignore (255)")

# %% [markdown]
# Check one exported label map against the unified dataset: the PNG's train id at every pixel is
# the vocabulary's train id of the pixel's unified class.

# %%
record = next(r for r in ds if r.split == "train")
label = np.asarray(Image.open(OUT / "ade-top" / "ann_dir" / "train" / f"{record.image_id}.png"))
lut = read_vocab(OUT / "ade-top" / "vocab.json").lookup(ds.classes)
expected = lut[record.semantic()]
assert (label == expected).all(), "exported labels differ from the vocabulary's train ids"
values, counts = np.unique(label, return_counts=True)
names = [vocab.names[v] if v < vocab.num_classes else "ignore" for v in values]
print(record.image_id, label.shape, dict(zip(names, counts.tolist())))
