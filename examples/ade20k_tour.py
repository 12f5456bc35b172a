"""A tour of a converted ADE20K dataset, top to bottom (run it as a script or cell by cell).

segdata demo --out /tmp/segdata-demo            # or convert a real ADE20K release
python examples/ade20k_tour.py /tmp/segdata-demo/ade20k-unified
"""

import sys

import numpy as np

import segdata

path = sys.argv[1] if len(sys.argv) > 1 else "segdata-demo/ade20k-unified"
ds = segdata.open(path)
print(ds)

# %% The three tables
print(ds.classes.head())
print(ds.images.head())
print(ds.segments.head())

# %% Pixel share per class, from the segment table alone (no mask decoded)
objects = ds.segments[ds.segments.layer == "objects"]
pixels = objects.groupby("class_id")["area"].sum().sort_values(ascending=False)
share = pixels / pixels.sum()
names = ds.classes.set_index("class_id")["name"]
top = share.head(10).rename(index=names)
print("top-10 classes by pixels:\n", top.round(4))
print(f"the top 10 of {len(share)} classes cover {share.head(10).sum():.1%} of labelled pixels")

# %% Instances and parts
print("instances per image:", objects[objects.is_instance].groupby("image_id").size().describe().round(1).to_dict())
parts = ds.segments[ds.segments.layer == "parts-1"]
print(f"{len(parts)} parts of level 1, {int((parts.parent_segment > 0).sum())} linked to their object")

# %% Pixels: one image's semantic map and its segment map
record = next(iter(ds))
semantic = record.semantic()
print(record.image_id, semantic.shape, "classes present:", np.unique(semantic[semantic > 0]).tolist()[:10])
