# Copyright (c) OpenMMLab. All rights reserved.
from typing import List, Optional, Sequence, Tuple

import cv2
import mmcv
import numpy as np
import pycocotools.mask as mask_utils
import torch
from mmdet.registry import VISUALIZERS
from mmdet.structures import DetDataSample
from mmengine.structures import InstanceData
from mmengine.visualization import Visualizer

from .palette import Color, id_color, text_color

_FONT = cv2.FONT_HERSHEY_SIMPLEX


def decode_masks(masks, shape: Tuple[int, int]) -> np.ndarray:
    """Masks in any of mmdet's / the VIS formats as a bool (N, H, W) array.

    Args:
        masks: A list of RLE dicts (compressed ``str``/``bytes`` or
            uncompressed counts), of polygon lists, of ``None`` (empty mask)
            or of (H, W) arrays; a (N, H, W) array or tensor; or mmdet
            ``BitmapMasks``.
        shape (tuple[int, int]): (H, W) of the image; used for polygons,
            ``None`` entries and empty input.

    Returns:
        np.ndarray: bool (N, H, W).
    """
    height, width = int(shape[0]), int(shape[1])
    if hasattr(masks, 'masks') and not isinstance(masks, (list, tuple)):
        masks = masks.masks  # BitmapMasks
    if isinstance(masks, torch.Tensor):
        masks = masks.detach().cpu().numpy()
    if isinstance(masks, np.ndarray):
        if masks.size == 0:
            return np.zeros((0, height, width), dtype=bool)
        if masks.ndim != 3:
            raise ValueError('dense masks must have shape (N, H, W), got '
                             f'{masks.shape}')
        return masks > 0.5 if masks.dtype.kind == 'f' else masks.astype(bool)
    out = np.zeros((len(masks), height, width), dtype=bool)
    for i, mask in enumerate(masks):
        if mask is None:
            continue
        if isinstance(mask, (np.ndarray, torch.Tensor)):
            mask = np.asarray(
                mask.cpu() if isinstance(mask, torch.Tensor) else mask)
            out[i] = mask > 0.5 if mask.dtype.kind == 'f' else mask != 0
            continue
        if isinstance(mask, dict):
            size = [int(s) for s in mask['size']]
            counts = mask['counts']
            if isinstance(counts, list):
                rle = mask_utils.frPyObjects(mask, *size)
            else:
                rle = dict(
                    size=size,
                    counts=counts.encode('ascii')
                    if isinstance(counts, str) else counts)
        else:  # polygons
            rle = mask_utils.merge(mask_utils.frPyObjects(mask, height, width))
        dense = mask_utils.decode(rle).astype(bool)
        if dense.shape != (height, width):
            raise ValueError(f'mask {i} has size {dense.shape}, the image '
                             f'{(height, width)}')
        out[i] = dense
    return out


def label_rect(text: str,
               anchor: Tuple[int, int],
               image_shape: Sequence[int],
               font_scale: float,
               thickness: int = 1) -> Tuple[int, int, int, int]:
    """Where :class:`VISLocalVisualizer` puts a label: the filled box
    ``(x0, y0, x1, y1)`` (end-exclusive) for ``text`` anchored at the
    top-left corner ``anchor = (x, y)`` of an instance's box; above the box
    when there is room, else just inside it, and shifted into the image."""
    (tw, th), baseline = cv2.getTextSize(text, _FONT, font_scale, thickness)
    height, width = int(image_shape[0]), int(image_shape[1])
    box_w, box_h = tw + 2, th + baseline + 2
    x0 = int(min(max(anchor[0], 0), max(width - box_w, 0)))
    y0 = int(anchor[1]) - box_h
    if y0 < 0:
        y0 = int(min(max(anchor[1], 0), max(height - box_h, 0)))
    return x0, y0, min(x0 + box_w, width), min(y0 + box_h, height)


def blend(pixels: np.ndarray, color: Color, alpha: float) -> np.ndarray:
    """``round((1 - alpha) * pixels + alpha * color)`` as uint8, the
    translucent fill of :class:`VISLocalVisualizer`."""
    mixed = pixels.astype(np.float64) * (1.0 - alpha) + \
        np.asarray(color, dtype=np.float64) * alpha
    return np.clip(np.rint(mixed), 0, 255).astype(np.uint8)


@VISUALIZERS.register_module()
class VISLocalVisualizer(Visualizer):
    """Visualiser of video instance segmentation, one frame at a time.

    Every instance is drawn as its mask filled translucently (``alpha``)
    with the colour of its id (:func:`~mdqe_mm.visualization.id_color`, so
    a track has one colour in every frame of a video), outlined in the same
    colour, and labelled ``"id class score"`` (ground truth: ``"id class"``
    plus the frame's occlusion level when given) at the top-left corner of
    the mask's box. Drawing uses numpy and OpenCV (not the matplotlib
    canvas of mmengine's ``Visualizer``, and no seaborn), so it is fast
    enough to render whole videos; ``add_datasample`` follows
    mmdet's ``TrackLocalVisualizer`` (per-frame ``DetDataSample``, RGB
    image, ``out_file`` written as an image).

    Pixels are changed only inside drawn masks (fill; the outline lies on
    the mask's own boundary pixels) and inside the label boxes
    (:func:`label_rect`, moved down past labels drawn before it; the boxes
    of the last drawing are in ``label_rects``).

    Args:
        name (str): Instance name. Defaults to 'visualizer'.
        image (np.ndarray, optional): Initial RGB image. Defaults to None.
        vis_backends (list[dict], optional): Visual backends.
        save_dir (str, optional): Save dir of the backends.
        alpha (float): Opacity of the mask fill. Defaults to 0.5.
        line_width (int): Outline width in pixels (0: no outline).
            Defaults to 1.
        font_scale (float, optional): OpenCV font scale; None scales with
            the image: ``min(H, W) / 600`` within [0.3, 1.2] (0.3 up to
            180 px, 0.6 at 360 px, 1.2 from 720 px). Defaults to None.
        draw_labels (bool): Draw the text labels. Defaults to True.
    """

    def __init__(self,
                 name: str = 'visualizer',
                 image: Optional[np.ndarray] = None,
                 vis_backends: Optional[List[dict]] = None,
                 save_dir: Optional[str] = None,
                 alpha: float = 0.5,
                 line_width: int = 1,
                 font_scale: Optional[float] = None,
                 draw_labels: bool = True) -> None:
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f'alpha must be in [0, 1], got {alpha}')
        self._drawn: Optional[np.ndarray] = None
        # (x0, y0, x1, y1) end-exclusive boxes of the last drawn labels
        self.label_rects: List[Tuple[int, int, int, int]] = []
        super().__init__(
            name=name,
            image=image,
            vis_backends=vis_backends,
            save_dir=save_dir)
        self.alpha = alpha
        self.line_width = int(line_width)
        self.font_scale = font_scale
        self.draw_labels = draw_labels

    # Images are kept as arrays (the matplotlib canvas of the base class is
    # not used: it is slow and resamples the image).
    def set_image(self, image: np.ndarray) -> None:
        """Set the RGB uint8 image (H, W, 3) to draw on."""
        image = np.asarray(image)
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError('VISLocalVisualizer draws on (H, W, 3) images, '
                             f'got shape {image.shape}')
        self._drawn = np.ascontiguousarray(image.astype(np.uint8, copy=True))
        self.width, self.height = image.shape[1], image.shape[0]

    def get_image(self) -> np.ndarray:
        """The drawn RGB image (H, W, 3) uint8."""
        if self._drawn is None:
            raise RuntimeError('VISLocalVisualizer: no image set')
        return self._drawn

    def _font_scale(self, shape: Sequence[int]) -> float:
        if self.font_scale is not None:
            return float(self.font_scale)
        return float(np.clip(min(shape[:2]) / 600.0, 0.3, 1.2))

    def class_name(self, label: int) -> str:
        """Name of class ``label`` from ``dataset_meta['classes']``."""
        classes = (self.dataset_meta or {}).get('classes')
        if classes is not None and 0 <= int(label) < len(classes):
            return str(classes[int(label)])
        return f'class{int(label)}'

    def draw_vis_instances(
            self,
            image: np.ndarray,
            masks: np.ndarray,
            ids: Sequence[int],
            texts: Optional[Sequence[str]] = None,
            colors: Optional[Sequence[Color]] = None) -> np.ndarray:
        """Draw instances on a copy of ``image``.

        Args:
            image (np.ndarray): RGB uint8 (H, W, 3).
            masks (np.ndarray): bool (N, H, W); drawn in order, so later
                masks cover earlier ones.
            ids (Sequence[int]): N ids that select the colours.
            texts (Sequence[str], optional): N labels (None: no labels).
            colors (Sequence[tuple], optional): N RGB colours overriding
                the id colours.

        Returns:
            np.ndarray: The drawn RGB uint8 (H, W, 3) image.
        """
        out = np.ascontiguousarray(np.array(image, dtype=np.uint8))
        if len(masks) != len(ids):
            raise ValueError(f'{len(masks)} masks but {len(ids)} ids')
        colors = [id_color(i) for i in ids] if colors is None else colors
        shape = out.shape[:2]
        for mask, color in zip(masks, colors):
            if mask.shape != shape:
                raise ValueError(f'a mask has shape {mask.shape}, the image '
                                 f'{shape}')
            if mask.any():
                out[mask] = blend(out[mask], color, self.alpha)
        if self.line_width > 0:
            for mask, color in zip(masks, colors):
                if not mask.any():
                    continue
                contours, _ = cv2.findContours(
                    mask.astype(np.uint8), cv2.RETR_EXTERNAL,
                    cv2.CHAIN_APPROX_NONE)
                # contour points are boundary pixels of the mask itself;
                # draw on a mask-clipped layer so wide lines stay inside
                layer = out.copy()
                cv2.drawContours(layer, contours, -1,
                                 tuple(int(c) for c in color), self.line_width)
                out[mask] = layer[mask]
        self.label_rects = []
        if self.draw_labels and texts is not None:
            scale = self._font_scale(shape)
            for mask, color, text in zip(masks, colors, texts):
                ys, xs = np.nonzero(mask)
                if len(xs) == 0 or not text:
                    continue
                x0, y0, x1, y1 = label_rect(text, (xs.min(), ys.min()), shape,
                                            scale)
                # move below the labels already placed that it would cover
                while True:
                    hits = [
                        r[3] for r in self.label_rects
                        if x0 < r[2] and r[0] < x1 and y0 < r[3] and r[1] < y1
                    ]
                    if not hits or max(hits) + (y1 - y0) > shape[0]:
                        break
                    y0, y1 = max(hits), max(hits) + (y1 - y0)
                self.label_rects.append((x0, y0, x1, y1))
                out[y0:y1, x0:x1] = color
                _, baseline = cv2.getTextSize(text, _FONT, scale, 1)
                cv2.putText(out, text, (x0 + 1, y1 - baseline - 1), _FONT,
                            scale, text_color(color), 1, cv2.LINE_AA)
        return out

    def _draw_pred(self, image: np.ndarray, instances: InstanceData,
                   score_thr: float) -> np.ndarray:
        if len(instances) == 0:
            return image.copy()
        scores = _numpy(instances.scores).astype(np.float64).reshape(-1)
        labels = _numpy(instances.labels).astype(np.int64).reshape(-1)
        ids = instances.get('track_ids', instances.get('instances_id'))
        ids = np.arange(len(scores)) if ids is None else \
            _numpy(ids).astype(np.int64).reshape(-1)
        keep = np.nonzero(scores >= score_thr)[0]
        keep = keep[np.argsort(-scores[keep], kind='stable')]
        # a track output with several classes (one (track, class) pair
        # each, same masks) is drawn once, with its best class
        _, first = np.unique(ids[keep], return_index=True)
        keep = keep[np.sort(first)][::-1]  # best drawn last, on top
        masks = decode_masks([instances.masks[i] for i in keep] if isinstance(
            instances.masks, list) else _numpy_masks(instances.masks)[keep],
                             image.shape[:2])
        texts = [
            f'{ids[i]} {self.class_name(labels[i])} {scores[i]:.2f}'
            for i in keep
        ]
        return self.draw_vis_instances(image, masks, ids[keep], texts)

    def _draw_gt(self, image: np.ndarray,
                 instances: InstanceData) -> np.ndarray:
        if len(instances) == 0:
            return image.copy()
        labels = _numpy(instances.labels).astype(np.int64).reshape(-1)
        ids = instances.get('instances_ids', instances.get('instances_id'))
        ids = np.arange(len(labels)) if ids is None else \
            _numpy(ids).astype(np.int64).reshape(-1)
        occlusion = instances.get('occlusion')
        masks = decode_masks(instances.masks, image.shape[:2])
        texts = []
        for k in range(len(labels)):
            text = f'{ids[k]} {self.class_name(labels[k])}'
            if occlusion is not None and occlusion[k]:
                level = str(occlusion[k]).replace('_occlusion', '')
                text += f' occ:{"none" if level == "no" else level}'
            texts.append(text)
        return self.draw_vis_instances(image, masks, ids, texts)

    def add_datasample(self,
                       name: str,
                       image: np.ndarray,
                       data_sample: Optional[DetDataSample] = None,
                       draw_gt: bool = True,
                       draw_pred: bool = True,
                       show: bool = False,
                       wait_time: float = 0,
                       out_file: Optional[str] = None,
                       pred_score_thr: float = 0.3,
                       step: int = 0) -> None:
        """Draw one frame's ground truth and/or predictions.

        With both, the ground truth is on the left and the predictions on
        the right. The drawn image is shown, written to ``out_file`` or
        else sent to the visual backends.

        Args:
            name (str): Image identifier.
            image (np.ndarray): The frame, RGB uint8 (H, W, 3), at the
                resolution of the masks (the original frame size).
            data_sample (:obj:`DetDataSample`, optional): The frame:
                ``gt_instances`` (``masks``, ``labels``, ``instances_ids``
                and optionally ``occlusion``, a list of per-instance frame
                labels) and/or ``pred_track_instances`` (``masks`` as RLE
                dicts or (N, H, W), ``scores``, ``labels`` and
                ``track_ids`` or ``instances_id``); of the entries that
                share an id (a track output once per class) only the
                best-scoring one is drawn.
            draw_gt (bool): Draw the ground truth. Defaults to True.
            draw_pred (bool): Draw the predictions. Defaults to True.
            show (bool): Show the image in a window. Defaults to False.
            wait_time (float): Seconds the window stays. Defaults to 0.
            out_file (str, optional): Image file to write (RGB is written
                as such). Defaults to None.
            pred_score_thr (float): Predictions scoring lower are not
                drawn. Defaults to 0.3.
            step (int): Global step for the backends. Defaults to 0.
        """
        image = np.asarray(image).astype(np.uint8, copy=False)
        panels = []
        if data_sample is not None:
            if draw_gt and 'gt_instances' in data_sample:
                panels.append(self._draw_gt(image, data_sample.gt_instances))
            if draw_pred and 'pred_track_instances' in data_sample:
                panels.append(
                    self._draw_pred(image, data_sample.pred_track_instances,
                                    pred_score_thr))
        drawn = np.concatenate(panels, axis=1) if panels else image.copy()
        self.set_image(drawn)
        if show:
            self.show(drawn, win_name=name, wait_time=wait_time)
        if out_file is not None:
            mmcv.imwrite(np.ascontiguousarray(drawn[..., ::-1]), out_file)
        elif not show:
            self.add_image(name, drawn, step)


def _numpy(value) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    return np.asarray(value)


def _numpy_masks(masks) -> np.ndarray:
    if hasattr(masks, 'masks'):
        masks = masks.masks
    return _numpy(masks)
