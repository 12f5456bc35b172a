"""The COCO-Stuff label table, as data: one typed row per label of ``labels.txt``.

Source: nightrome/cocostuff ``labels.txt`` (and ``labels.md``, which marks the 11 thing labels
"Removed from COCO"): ids 0..182, ``0 unlabeled``, things 1..91, stuff 92..182. Ids are COCO
category ids (the ``category_id`` of the instances and stuff JSONs), 1-based. The label maps of
``stuffthingmaps_trainval2017`` store ``id - 1`` (0..181) and 255 for unlabeled: that is the
``png`` column. In segdata ``class_id`` = ``source_id`` = ``id``; 0 stays unlabeled.

``used`` is False for ``unlabeled`` and for the 11 thing ids COCO defined but never annotated
(street sign, hat, shoe, ...): COCO-Stuff's classes are the 171 rows with ``used`` True (80
things, 91 stuff). The table is checked at import (ids 0..182 once each, ``png`` = ``id - 1``,
names unique, 171 used labels).

>>> COCO_STUFF_NAMES[1], COCO_STUFF_NAMES[182], LABEL_OF_PNG[255].name
('person', 'wood', 'unlabeled')
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["COCO_STUFF_NAMES", "COCO_STUFF_UNLABELED", "COCO_UNUSED_THING_IDS", "LABELS", "LABEL_OF_PNG", "Label"]


class Label(NamedTuple):
    """One row of COCO-Stuff's ``labels.txt``."""

    name: str
    id: int  # COCO category id, 1..182; 0 = unlabeled
    png: int  # the value in a stuffthingmaps PNG: id - 1, 255 = unlabeled
    is_thing: bool  # ids 1..91
    used: bool  # one of COCO-Stuff's 171 classes


# fmt: off
LABELS: tuple[Label, ...] = (
    #     name                  id   png   is_thing  used
    Label("unlabeled",           0,  255,  False,    False),
    Label("person",              1,    0,  True,     True),
    Label("bicycle",             2,    1,  True,     True),
    Label("car",                 3,    2,  True,     True),
    Label("motorcycle",          4,    3,  True,     True),
    Label("airplane",            5,    4,  True,     True),
    Label("bus",                 6,    5,  True,     True),
    Label("train",               7,    6,  True,     True),
    Label("truck",               8,    7,  True,     True),
    Label("boat",                9,    8,  True,     True),
    Label("traffic light",      10,    9,  True,     True),
    Label("fire hydrant",       11,   10,  True,     True),
    Label("street sign",        12,   11,  True,     False),
    Label("stop sign",          13,   12,  True,     True),
    Label("parking meter",      14,   13,  True,     True),
    Label("bench",              15,   14,  True,     True),
    Label("bird",               16,   15,  True,     True),
    Label("cat",                17,   16,  True,     True),
    Label("dog",                18,   17,  True,     True),
    Label("horse",              19,   18,  True,     True),
    Label("sheep",              20,   19,  True,     True),
    Label("cow",                21,   20,  True,     True),
    Label("elephant",           22,   21,  True,     True),
    Label("bear",               23,   22,  True,     True),
    Label("zebra",              24,   23,  True,     True),
    Label("giraffe",            25,   24,  True,     True),
    Label("hat",                26,   25,  True,     False),
    Label("backpack",           27,   26,  True,     True),
    Label("umbrella",           28,   27,  True,     True),
    Label("shoe",               29,   28,  True,     False),
    Label("eye glasses",        30,   29,  True,     False),
    Label("handbag",            31,   30,  True,     True),
    Label("tie",                32,   31,  True,     True),
    Label("suitcase",           33,   32,  True,     True),
    Label("frisbee",            34,   33,  True,     True),
    Label("skis",               35,   34,  True,     True),
    Label("snowboard",          36,   35,  True,     True),
    Label("sports ball",        37,   36,  True,     True),
    Label("kite",               38,   37,  True,     True),
    Label("baseball bat",       39,   38,  True,     True),
    Label("baseball glove",     40,   39,  True,     True),
    Label("skateboard",         41,   40,  True,     True),
    Label("surfboard",          42,   41,  True,     True),
    Label("tennis racket",      43,   42,  True,     True),
    Label("bottle",             44,   43,  True,     True),
    Label("plate",              45,   44,  True,     False),
    Label("wine glass",         46,   45,  True,     True),
    Label("cup",                47,   46,  True,     True),
    Label("fork",               48,   47,  True,     True),
    Label("knife",              49,   48,  True,     True),
    Label("spoon",              50,   49,  True,     True),
    Label("bowl",               51,   50,  True,     True),
    Label("banana",             52,   51,  True,     True),
    Label("apple",              53,   52,  True,     True),
    Label("sandwich",           54,   53,  True,     True),
    Label("orange",             55,   54,  True,     True),
    Label("broccoli",           56,   55,  True,     True),
    Label("carrot",             57,   56,  True,     True),
    Label("hot dog",            58,   57,  True,     True),
    Label("pizza",              59,   58,  True,     True),
    Label("donut",              60,   59,  True,     True),
    Label("cake",               61,   60,  True,     True),
    Label("chair",              62,   61,  True,     True),
    Label("couch",              63,   62,  True,     True),
    Label("potted plant",       64,   63,  True,     True),
    Label("bed",                65,   64,  True,     True),
    Label("mirror",             66,   65,  True,     False),
    Label("dining table",       67,   66,  True,     True),
    Label("window",             68,   67,  True,     False),
    Label("desk",               69,   68,  True,     False),
    Label("toilet",             70,   69,  True,     True),
    Label("door",               71,   70,  True,     False),
    Label("tv",                 72,   71,  True,     True),
    Label("laptop",             73,   72,  True,     True),
    Label("mouse",              74,   73,  True,     True),
    Label("remote",             75,   74,  True,     True),
    Label("keyboard",           76,   75,  True,     True),
    Label("cell phone",         77,   76,  True,     True),
    Label("microwave",          78,   77,  True,     True),
    Label("oven",               79,   78,  True,     True),
    Label("toaster",            80,   79,  True,     True),
    Label("sink",               81,   80,  True,     True),
    Label("refrigerator",       82,   81,  True,     True),
    Label("blender",            83,   82,  True,     False),
    Label("book",               84,   83,  True,     True),
    Label("clock",              85,   84,  True,     True),
    Label("vase",               86,   85,  True,     True),
    Label("scissors",           87,   86,  True,     True),
    Label("teddy bear",         88,   87,  True,     True),
    Label("hair drier",         89,   88,  True,     True),
    Label("toothbrush",         90,   89,  True,     True),
    Label("hair brush",         91,   90,  True,     False),
    Label("banner",             92,   91,  False,    True),
    Label("blanket",            93,   92,  False,    True),
    Label("branch",             94,   93,  False,    True),
    Label("bridge",             95,   94,  False,    True),
    Label("building-other",     96,   95,  False,    True),
    Label("bush",               97,   96,  False,    True),
    Label("cabinet",            98,   97,  False,    True),
    Label("cage",               99,   98,  False,    True),
    Label("cardboard",         100,   99,  False,    True),
    Label("carpet",            101,  100,  False,    True),
    Label("ceiling-other",     102,  101,  False,    True),
    Label("ceiling-tile",      103,  102,  False,    True),
    Label("cloth",             104,  103,  False,    True),
    Label("clothes",           105,  104,  False,    True),
    Label("clouds",            106,  105,  False,    True),
    Label("counter",           107,  106,  False,    True),
    Label("cupboard",          108,  107,  False,    True),
    Label("curtain",           109,  108,  False,    True),
    Label("desk-stuff",        110,  109,  False,    True),
    Label("dirt",              111,  110,  False,    True),
    Label("door-stuff",        112,  111,  False,    True),
    Label("fence",             113,  112,  False,    True),
    Label("floor-marble",      114,  113,  False,    True),
    Label("floor-other",       115,  114,  False,    True),
    Label("floor-stone",       116,  115,  False,    True),
    Label("floor-tile",        117,  116,  False,    True),
    Label("floor-wood",        118,  117,  False,    True),
    Label("flower",            119,  118,  False,    True),
    Label("fog",               120,  119,  False,    True),
    Label("food-other",        121,  120,  False,    True),
    Label("fruit",             122,  121,  False,    True),
    Label("furniture-other",   123,  122,  False,    True),
    Label("grass",             124,  123,  False,    True),
    Label("gravel",            125,  124,  False,    True),
    Label("ground-other",      126,  125,  False,    True),
    Label("hill",              127,  126,  False,    True),
    Label("house",             128,  127,  False,    True),
    Label("leaves",            129,  128,  False,    True),
    Label("light",             130,  129,  False,    True),
    Label("mat",               131,  130,  False,    True),
    Label("metal",             132,  131,  False,    True),
    Label("mirror-stuff",      133,  132,  False,    True),
    Label("moss",              134,  133,  False,    True),
    Label("mountain",          135,  134,  False,    True),
    Label("mud",               136,  135,  False,    True),
    Label("napkin",            137,  136,  False,    True),
    Label("net",               138,  137,  False,    True),
    Label("paper",             139,  138,  False,    True),
    Label("pavement",          140,  139,  False,    True),
    Label("pillow",            141,  140,  False,    True),
    Label("plant-other",       142,  141,  False,    True),
    Label("plastic",           143,  142,  False,    True),
    Label("platform",          144,  143,  False,    True),
    Label("playingfield",      145,  144,  False,    True),
    Label("railing",           146,  145,  False,    True),
    Label("railroad",          147,  146,  False,    True),
    Label("river",             148,  147,  False,    True),
    Label("road",              149,  148,  False,    True),
    Label("rock",              150,  149,  False,    True),
    Label("roof",              151,  150,  False,    True),
    Label("rug",               152,  151,  False,    True),
    Label("salad",             153,  152,  False,    True),
    Label("sand",              154,  153,  False,    True),
    Label("sea",               155,  154,  False,    True),
    Label("shelf",             156,  155,  False,    True),
    Label("sky-other",         157,  156,  False,    True),
    Label("skyscraper",        158,  157,  False,    True),
    Label("snow",              159,  158,  False,    True),
    Label("solid-other",       160,  159,  False,    True),
    Label("stairs",            161,  160,  False,    True),
    Label("stone",             162,  161,  False,    True),
    Label("straw",             163,  162,  False,    True),
    Label("structural-other",  164,  163,  False,    True),
    Label("table",             165,  164,  False,    True),
    Label("tent",              166,  165,  False,    True),
    Label("textile-other",     167,  166,  False,    True),
    Label("towel",             168,  167,  False,    True),
    Label("tree",              169,  168,  False,    True),
    Label("vegetable",         170,  169,  False,    True),
    Label("wall-brick",        171,  170,  False,    True),
    Label("wall-concrete",     172,  171,  False,    True),
    Label("wall-other",        173,  172,  False,    True),
    Label("wall-panel",        174,  173,  False,    True),
    Label("wall-stone",        175,  174,  False,    True),
    Label("wall-tile",         176,  175,  False,    True),
    Label("wall-wood",         177,  176,  False,    True),
    Label("water-other",       178,  177,  False,    True),
    Label("waterdrops",        179,  178,  False,    True),
    Label("window-blind",      180,  179,  False,    True),
    Label("window-other",      181,  180,  False,    True),
    Label("wood",              182,  181,  False,    True),
)
# fmt: on

#: the value of unlabeled pixels in a stuffthingmaps PNG
COCO_STUFF_UNLABELED = 255
#: category id 1..182 -> name (unlabeled left out: segdata's class 0 has no row)
COCO_STUFF_NAMES: dict[int, str] = {label.id: label.name for label in LABELS if label.id > 0}
#: thing ids COCO defines but never annotated (not in COCO's 80 or COCO-Stuff's 171 classes)
COCO_UNUSED_THING_IDS = frozenset(label.id for label in LABELS if label.is_thing and not label.used)
#: stuffthingmaps PNG value (0..181, 255) -> Label
LABEL_OF_PNG: dict[int, Label] = {label.png: label for label in LABELS}


def _check_labels() -> None:
    """The facts of ``labels.txt`` this package relies on; checked at import."""

    def need(ok: bool, what: str) -> None:
        if not ok:
            raise ValueError(f"converters/coco/stuff_labels.py LABELS: {what}")

    ids = [label.id for label in LABELS]
    need(ids == list(range(183)), "ids must be 0..182, once each, in order")
    need(LABELS[0].name == "unlabeled" and LABELS[0].png == COCO_STUFF_UNLABELED, "0 must be unlabeled, 255 in a PNG")
    need(len({label.name for label in LABELS}) == len(LABELS), "duplicate names")
    for label in LABELS[1:]:
        need(label.png == label.id - 1, f"{label.name}: png must be id - 1, found {label.png}")
        need(label.is_thing == (label.id <= 91), f"{label.name}: things are ids 1..91")
    need(sum(label.used for label in LABELS) == 171, "COCO-Stuff has 171 classes")
    need(sum(label.used for label in LABELS if label.is_thing) == 80, "COCO has 80 thing classes")
    need(len(COCO_UNUSED_THING_IDS) == 11, "11 thing ids were removed from COCO")


_check_labels()
