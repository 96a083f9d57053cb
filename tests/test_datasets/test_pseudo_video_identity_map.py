# Copyright (c) OpenMMLab. All rights reserved.
"""ImageToPseudoVideo(label_map=None) keeps the image dataset's classes
(MDQE's COCO stages train on all 80 COCO classes)."""
import numpy as np
from mmdet.datasets import CocoDataset
from mmdet.structures.bbox import HorizontalBoxes
from mmdet.structures.mask import BitmapMasks

from mdqe_mm.datasets.transforms import ImageToPseudoVideo


def image(labels):
    height, width = 32, 40
    masks = np.zeros((len(labels), height, width), np.uint8)
    boxes = []
    for i in range(len(labels)):
        masks[i, 2 + i:12 + i, 3:20] = 1
        boxes.append([3, 2 + i, 20, 12 + i])
    boxes = np.array(boxes, np.float32)
    return dict(
        img=np.zeros((height, width, 3), np.uint8),
        img_path='coco/1.jpg',
        img_id=1,
        img_shape=(height, width),
        ori_shape=(height, width),
        instances=[dict(bbox=list(b)) for b in boxes],
        gt_bboxes=HorizontalBoxes(boxes),
        gt_bboxes_labels=np.array(labels),
        gt_masks=BitmapMasks(masks, height, width),
        gt_ignore_flags=np.zeros(len(labels), bool))


def test_none_keeps_every_coco_class():
    classes = CocoDataset.METAINFO['classes']
    transform = ImageToPseudoVideo(num_frames=2, label_map=None)
    assert transform.target_classes == tuple(classes)
    assert transform.label_lookup.tolist() == list(range(80))
    # toaster (70) has no VIS class but is kept here, like the person (0)
    out = transform(image([0, 70, 79]))
    assert len(out['img']) == 2
    for labels in out['gt_bboxes_labels']:
        assert labels.tolist() == [0, 70, 79]


def test_none_with_target_classes_keeps_those_only():
    transform = ImageToPseudoVideo(
        num_frames=1, label_map=None, target_classes=('dog', 'person'))
    out = transform(image([0, 16, 2]))  # person, dog, car
    assert out['gt_bboxes_labels'][0].tolist() == [1, 0]
