"""Synthetic datasets in the exact on-disk layouts of the real ones, for the demo, the tests and
the benchmarks. One module per family; their generators are re-exported here."""

from .ade20k import (  # noqa: F401
    ADE_MAX_CODE,
    ClassInfo,
    ConsistencyPerturbation,
    ConsistencySummary,
    ImagePerturbation,
    RenderedImage,
    SyntheticObject,
    ade_instance_b_values,
    class_details,
    class_vocabulary,
    encode_ade_rgb,
    generate_ade20k_2016,
    generate_ade20k_2021,
    generate_ade20k_challenge,
    generate_ade20k_consistency,
    render_objects,
    synthesize_ade20k,
    write_ade2016_image,
    write_ade2021_image,
    write_atr,
    write_challenge_image,
)
from .cityscapes import generate_cityscapes  # noqa: F401
from .coco import generate_coco_instances  # noqa: F401
from .voc import generate_voc  # noqa: F401
