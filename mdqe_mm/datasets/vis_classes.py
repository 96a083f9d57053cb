# Copyright (c) OpenMMLab. All rights reserved.
"""Class lists of the VIS benchmarks and the COCO-to-VIS label maps.

The class lists are in category-id order (id ``i + 1`` is entry ``i``) and
spelled exactly as in the official annotation files, e.g. OVIS ``Vehical``.

The COCO maps (``COCO_TO_OVIS``, ``COCO_TO_YOUTUBE_VIS_2019``,
``COCO_TO_YOUTUBE_VIS_2021``) go from COCO class names (as in
:class:`mmdet.datasets.CocoDataset`) to target class names. The algorithm
specification does not list the reference code's exact id maps, so these were
written from the class names: a COCO class is mapped only when it names the
same kind of object (``car`` -> ``sedan``, ``motorcycle`` -> ``motorbike``,
``frisbee`` -> ``flying_disc``, ``car``/``bus``/``truck`` -> OVIS
``Vehical``). Deliberately unmapped: COCO ``mouse`` (a computer mouse, while
the VIS ``mouse`` is the animal), ``bicycle`` for YouTube-VIS (no bicycle
class) and ``skis``. COCO instances of unmapped classes are dropped from
pseudo-videos.
"""
from typing import Dict, Tuple

OVIS_CLASSES: Tuple[str, ...] = ('Person', 'Bird', 'Cat', 'Dog', 'Horse',
                                 'Sheep', 'Cow', 'Elephant', 'Bear', 'Zebra',
                                 'Giraffe', 'Poultry', 'Giant_panda', 'Lizard',
                                 'Parrot', 'Monkey', 'Rabbit', 'Tiger', 'Fish',
                                 'Turtle', 'Bicycle', 'Motorcycle', 'Airplane',
                                 'Boat', 'Vehical')

YOUTUBE_VIS_2019_CLASSES: Tuple[str, ...] = (
    'person', 'giant_panda', 'lizard', 'parrot', 'skateboard', 'sedan', 'ape',
    'dog', 'snake', 'monkey', 'hand', 'rabbit', 'duck', 'cat', 'cow', 'fish',
    'train', 'horse', 'turtle', 'bear', 'motorbike', 'giraffe', 'leopard',
    'fox', 'deer', 'owl', 'surfboard', 'airplane', 'truck', 'zebra', 'tiger',
    'elephant', 'snowboard', 'boat', 'shark', 'mouse', 'frog', 'eagle',
    'earless_seal', 'tennis_racket')

YOUTUBE_VIS_2021_CLASSES: Tuple[str, ...] = (
    'airplane', 'bear', 'bird', 'boat', 'car', 'cat', 'cow', 'deer', 'dog',
    'duck', 'earless_seal', 'elephant', 'fish', 'flying_disc', 'fox', 'frog',
    'giant_panda', 'giraffe', 'horse', 'leopard', 'lizard', 'monkey',
    'motorbike', 'mouse', 'parrot', 'person', 'rabbit', 'shark', 'skateboard',
    'snake', 'snowboard', 'squirrel', 'surfboard', 'tennis_racket', 'tiger',
    'train', 'truck', 'turtle', 'whale', 'zebra')

# Categories of the generated occlusion videos (mdqe_mm.datasets.synthetic).
SYNTHETIC_VIS_CLASSES: Tuple[str,
                             ...] = ('disc', 'square', 'triangle', 'cross')

VIS_CLASS_PRESETS: Dict[str, Tuple[str, ...]] = {
    'ovis': OVIS_CLASSES,
    'youtube_vis_2019': YOUTUBE_VIS_2019_CLASSES,
    'youtube_vis_2021': YOUTUBE_VIS_2021_CLASSES,
    'synthetic_vis': SYNTHETIC_VIS_CLASSES,
}

COCO_TO_OVIS: Dict[str, str] = {
    'person': 'Person',
    'bicycle': 'Bicycle',
    'car': 'Vehical',
    'motorcycle': 'Motorcycle',
    'airplane': 'Airplane',
    'bus': 'Vehical',
    'truck': 'Vehical',
    'boat': 'Boat',
    'bird': 'Bird',
    'cat': 'Cat',
    'dog': 'Dog',
    'horse': 'Horse',
    'sheep': 'Sheep',
    'cow': 'Cow',
    'elephant': 'Elephant',
    'bear': 'Bear',
    'zebra': 'Zebra',
    'giraffe': 'Giraffe',
}

COCO_TO_YOUTUBE_VIS_2019: Dict[str, str] = {
    'person': 'person',
    'car': 'sedan',
    'motorcycle': 'motorbike',
    'airplane': 'airplane',
    'train': 'train',
    'truck': 'truck',
    'boat': 'boat',
    'cat': 'cat',
    'dog': 'dog',
    'horse': 'horse',
    'cow': 'cow',
    'elephant': 'elephant',
    'bear': 'bear',
    'zebra': 'zebra',
    'giraffe': 'giraffe',
    'snowboard': 'snowboard',
    'skateboard': 'skateboard',
    'surfboard': 'surfboard',
    'tennis racket': 'tennis_racket',
}

COCO_TO_YOUTUBE_VIS_2021: Dict[str, str] = {
    'person': 'person',
    'car': 'car',
    'motorcycle': 'motorbike',
    'airplane': 'airplane',
    'train': 'train',
    'truck': 'truck',
    'boat': 'boat',
    'bird': 'bird',
    'cat': 'cat',
    'dog': 'dog',
    'horse': 'horse',
    'cow': 'cow',
    'elephant': 'elephant',
    'bear': 'bear',
    'zebra': 'zebra',
    'giraffe': 'giraffe',
    'frisbee': 'flying_disc',
    'snowboard': 'snowboard',
    'skateboard': 'skateboard',
    'surfboard': 'surfboard',
    'tennis racket': 'tennis_racket',
}

COCO_TO_VIS_PRESETS: Dict[str, Dict[str, str]] = {
    'ovis': COCO_TO_OVIS,
    'youtube_vis_2019': COCO_TO_YOUTUBE_VIS_2019,
    'youtube_vis_2021': COCO_TO_YOUTUBE_VIS_2021,
}
