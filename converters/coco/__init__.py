"""COCO, read exactly as it ships: instances and stuff JSON, panoptic JSON + PNG, COCO-Stuff PNGs;
and the exporter to COCO panoptic.

Layouts (detected by :func:`detect`, one per conversion)::

    ROOT/annotations/instances_<split><year>.json   polygons; RLE (counts list or string) for crowds
    ROOT/annotations/stuff_<split><year>.json       COCO-Stuff stuff-only JSON (compressed RLE strings)
    ROOT/annotations/panoptic_<split><year>.json    + the PNG folder of the same name, next to the
                                                    JSON or in ROOT: RGB, id = R + 256 G + 256^2 B
    ROOT/stuffthingmaps_trainval2017/<split><year>/*.png   (or ROOT/stuffthingmaps/...)
                                                    COCO-Stuff label maps: value = category id - 1,
                                                    255 = unlabeled
    ROOT/<split><year>/<file_name>                  images (or ROOT/images/<split><year>/)

``coco-instances``       instances JSONs; ``coco-things-stuff`` when a ``stuff_<split><year>.json``
                         sits next to them (things and stuff in one ``objects`` layer);
``coco-stuff``           stuff JSONs alone; ``coco-panoptic``; ``coco-stuffthingmaps``.

When several are present the first of instances, panoptic, stuffthingmaps, stuff is taken;
``kind=`` picks another, ``annotations=`` names the JSON file(s) to read. Splits are ``train``,
``val``, ``test`` (the ``<split>`` of ``instances_<split><year>.json``); the year is the layout's
``release``; when files of several years are present the latest year is read.

Conventions:

- image ids are the JSON's ``id`` written in decimal (``"397133"``); the stuffthingmaps' ids are
  their file names read as a number (``000000000139.png`` -> ``"139"``).
- ``class_id`` = ``source_id`` = the COCO category id (things 1..90 with gaps, panoptic stuff
  92..200, COCO-Stuff stuff 92..182 and ``other`` 183). Every category of the JSON is in the
  class table, seen or not (COCO-Stuff PNGs: the 171 categories COCO-Stuff uses). ``is_thing``:
  instances JSON True, stuff JSON False, panoptic ``isthing``, COCO-Stuff ids <= 91.
- one segment row per annotation (instances/stuff JSON) or per ``segments_info`` entry
  (panoptic); ``source_instance`` is the annotation id (panoptic: the segment id in the PNG),
  ``source_area`` COCO's own ``area``, ``iscrowd`` the JSON's. ``is_instance`` is true for
  non-crowd annotations of thing categories; a crowd region (many objects under one mask) and a
  stuff region are not instances. COCO's ``area`` is *not* the pixel count: polygon areas differ
  from the rasterised masks by up to ~12% on small objects, crowd RLE areas by up to 45% on the
  samples; ``area`` is always the pixel count in the segment map.
- stuffthingmaps segments are class regions: segment id = class id = PNG value + 1.

Overlaps (instances and stuff JSON only; panoptic PNGs and label maps cannot overlap): COCO
instance masks overlap, a segment map cannot. Each annotation is rasterised with pycocotools
(``annToMask``'s exact pixels) and painted bottom to top in this order, so that the first rule
that separates two annotations decides which is on top:

1. things above stuff (annotations of the instances JSON above those of the stuff JSON);
2. smaller above larger, by pixel count before resolution: a small object overlapping a large
   one is nearly always in front of it (a cup on a table, a person before a bus) and would
   otherwise vanish, while the large one loses little; and unlike "later on top" the result
   does not depend on the arbitrary order of the JSON;
3. equal sizes: the higher annotation id on top.

Every annotation keeps its row. The pixels it lost to the rule are recorded in
``pixels_lost`` (pixels before resolution - ``area``); an annotation that lost every pixel,
or that covers no pixel at all, is a row with ``area`` 0 and no pixel in the map.

Memory: a COCO train2017 instances JSON is 448 MB, and ``json.load`` would turn it into several
GB of Python objects. :func:`list_images` walks the JSON once, one array element at a time
(:class:`segdata.jsonstream.JsonStream`), and
keeps per annotation only its image and its byte span in the file; each task carries the spans
of its image's annotations, which the worker reads back from the file and parses. Nothing holds
the annotations or masks of more than one image.

Images listed in the JSON but missing on disk are converted (width and height are in the JSON)
and listed under ``problems``.

The package: ``layout`` (records, categories, :func:`detect`), ``listing`` (:func:`list_images`),
``readers`` (one image of each layout, :func:`build_classes`), ``export`` (:func:`write`, the COCO
panoptic exporter), ``panoptic_cityscapes`` (its official Cityscapes convention, as
cityscapesScripts' ``csCreatePanopticImgs`` writes it), ``stuff_labels`` (COCO-Stuff's label
table, as data). This module is the
converter's whole interface (``segdata.cli`` and ``segdata.convert`` use only its names).
"""

from __future__ import annotations

from pathlib import Path

from segdata.convert import ConvertedImage

from .export import write
from .layout import (
    FAMILY,
    KINDS,
    LAYOUT_NAMES,
    LOOKED_FOR,
    PANOPTIC_CATEGORIES_FILE,
    Category,
    Layout,
    Source,
    Task,
    detect,
)
from .listing import list_images
from .readers import (
    _read_json_annotations,
    _read_panoptic,
    _read_stuffthingmap,
    build_classes,
    rle_counts,
)
from .stuff_labels import COCO_STUFF_NAMES, COCO_STUFF_UNLABELED, COCO_UNUSED_THING_IDS

__all__ = [
    "COCO_STUFF_NAMES",
    "COCO_STUFF_UNLABELED",
    "COCO_UNUSED_THING_IDS",
    "FAMILY",
    "KINDS",
    "LAYOUT_NAMES",
    "LOOKED_FOR",
    "PANOPTIC_CATEGORIES_FILE",
    "Category",
    "Layout",
    "Source",
    "Task",
    "build_classes",
    "detect",
    "layers",
    "list_images",
    "read",
    "read_image",
    "rle_counts",
    "write",
]


def read_image(layout: Layout, task: Task) -> ConvertedImage:
    """Convert one image of ``layout``; raises :class:`InputError` naming the bad file."""
    if layout.name == LAYOUT_NAMES["panoptic"]:
        return _read_panoptic(layout, task)
    if layout.name == LAYOUT_NAMES["stuffthingmaps"]:
        return _read_stuffthingmap(layout, task)
    return _read_json_annotations(layout, task)


def read(root: str | Path, split: str | None = None, **options):
    """Yield one :class:`~segdata.convert.ConvertedImage` per image of the COCO dataset at ``root``.

    The in-memory counterpart of ``segdata convert coco``, for notebooks: masks are returned as
    arrays, not written. ``options`` are those of :func:`detect`.
    """
    layout = detect(root, **options)
    for task in list_images(layout, split=split):
        yield read_image(layout, task)


def layers(layout: Layout) -> list[dict]:
    """The one layer every COCO layout produces."""
    what = {
        LAYOUT_NAMES["instances"]: "COCO instances, overlaps resolved (smaller on top)",
        LAYOUT_NAMES["things-stuff"]: "COCO instances and COCO-Stuff stuff, overlaps resolved "
        "(things on top, then smaller on top)",
        LAYOUT_NAMES["stuff"]: "COCO-Stuff stuff regions",
        LAYOUT_NAMES["panoptic"]: "COCO panoptic segments (things and stuff)",
        LAYOUT_NAMES["stuffthingmaps"]: "COCO-Stuff class regions (things and stuff)",
    }[layout.name]
    return [{"name": "objects", "parent": None, "description": what}]
