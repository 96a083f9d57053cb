# Copyright (c) OpenMMLab. All rights reserved.
import os
import os.path as osp
import zipfile
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence, Union

import mmengine
import numpy as np
import torch
from mmdet.evaluation.metrics.base_video_metric import BaseVideoMetric
from mmdet.registry import METRICS
from mmengine.fileio import get_local_path
from mmengine.logging import MMLogger
from mmengine.structures import BaseDataElement
from pycocotools import mask as mask_utils

from ..functional import (VISFormatError, VISGroundTruth, evaluate_vis,
                          load_vis_ground_truth)

_KNOWN_ITEMS = ('AP', 'AP50', 'AP75', 'APs', 'APm', 'APl', 'APso', 'APmo',
                'APho', 'AR1', 'AR10', 'AR100', 'ARs', 'ARm', 'ARl', 'ARso',
                'ARmo', 'ARho')
_DUPLICATE_ID_RULES = ('error', 'keep_highest', 'keep_last')


@METRICS.register_module()
class VISMetric(BaseVideoMetric):
    """YouTube-VIS 2019/2021 and OVIS evaluation, or CodaLab formatting.

    The ground truth is read from the dataset's raw annotation file, so mask
    areas (size bins) and OVIS occlusion labels are the official ones;
    evaluation runs :func:`mdqe_mm.evaluation.functional.evaluate_vis`, which
    reproduces the official ``ytvoseval`` / ``oviseval`` numbers. Official
    val/test files have ``"annotations": null``: use ``format_only=True``
    there, which writes ``{outfile_prefix}.json`` and
    ``{outfile_prefix}.submission_file.zip`` holding it as ``results.json``.

    ``process`` takes the model's per-video output in mmdet's
    ``TrackDataSample`` convention: for each video a list of per-frame
    ``DetDataSample`` whose ``pred_track_instances`` carry ``masks`` (a list
    of RLE dicts, or a bool tensor/array of shape (N, H, W)), ``scores``,
    ``labels`` and ``instances_id``, with metainfo ``video_id``,
    ``frame_id``, ``ori_shape`` and ``video_length`` /
    ``ori_video_length``. Frames of a video may arrive over several calls
    and ranks; tracks are assembled by ``instances_id`` at the end: the track
    score is the mean of its frame scores and its category the majority of
    its frame labels (as mmdet's ``YouTubeVISMetric``).

    Args:
        ann_file (str): YouTube-VIS / OVIS annotation JSON.
        metric_items (Sequence[str], optional): Stats to return, among
            AP, AP50, AP75, APs, APm, APl, AR1, AR10, AR100, ARs, ARm, ARl
            and, with occlusion labels, APso, APmo, APho, ARso, ARmo, ARho.
            Defaults to all available ones.
        format_only (bool): Only write the results file and the CodaLab zip.
            Defaults to False.
        outfile_prefix (str, optional): Where to write
            ``{outfile_prefix}.json`` and the zip. Required with
            ``format_only``; when evaluating, the results are also written
            if it is given. Defaults to None.
        classwise (bool): Log the per-category AP table. Defaults to True.
        collect_device (str): 'cpu' (the only one mmdet's video metrics
            support). Defaults to 'cpu'.
        prefix (str, optional): Prefix of the metric names. Defaults to
            'vis'.
        backend_args (dict, optional): File backend of ``ann_file``.
        duplicate_ids (str): What to do when one frame has two predictions
            with the same ``instances_id``, which frame-by-frame trackers
            (e.g. mmdet's MaskTrackRCNN) can produce: ``'error'`` raises,
            ``'keep_highest'`` keeps the higher-scored one, ``'keep_last'``
            keeps the last one, as mmdet's ``YouTubeVISMetric`` does.
            Defaults to ``'error'``: a tracker that should give unique ids
            does not get scored silently.
    """
    default_prefix: Optional[str] = 'vis'

    def __init__(self,
                 ann_file: str,
                 metric_items: Optional[Sequence[str]] = None,
                 format_only: bool = False,
                 outfile_prefix: Optional[str] = None,
                 classwise: bool = True,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None,
                 backend_args: Optional[dict] = None,
                 duplicate_ids: str = 'error') -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        if duplicate_ids not in _DUPLICATE_ID_RULES:
            raise ValueError(f'duplicate_ids must be one of '
                             f'{_DUPLICATE_ID_RULES}, got {duplicate_ids!r}')
        self.duplicate_ids = duplicate_ids
        if not isinstance(ann_file, str) or not ann_file:
            raise ValueError('VISMetric needs ann_file, the YouTube-VIS / '
                             'OVIS annotation JSON of the evaluated split')
        if metric_items is not None:
            unknown = [m for m in metric_items if m not in _KNOWN_ITEMS]
            if unknown:
                raise KeyError(f'unknown metric items {unknown}; choose from '
                               f'{list(_KNOWN_ITEMS)}')
        if format_only and not outfile_prefix:
            raise ValueError(
                'format_only=True writes the CodaLab submission to '
                '{outfile_prefix}.json / .submission_file.zip: set '
                'outfile_prefix (a temporary directory would be lost)')
        if collect_device != 'cpu':
            raise ValueError("VISMetric collects results on 'cpu' only")
        self.ann_file = ann_file
        self.metric_items = list(metric_items) if metric_items else None
        self.format_only = format_only
        self.outfile_prefix = outfile_prefix
        self.classwise = classwise
        self.backend_args = backend_args
        self._ground_truth: Optional[VISGroundTruth] = None

    # ------------------------------------------------------------------
    # per batch
    # ------------------------------------------------------------------
    def process(self, data_batch: dict,
                data_samples: Sequence[Union[BaseDataElement, dict]]) -> None:
        """Store the predictions of every frame in ``data_samples``.

        Args:
            data_batch (dict): Unused.
            data_samples (Sequence): ``TrackDataSample`` (or its dict) per
                video, or per-frame ``DetDataSample`` (or dicts).
        """
        for sample in data_samples:
            for frame in _frames_of(sample):
                self.results.append(_frame_record(frame))

    # ------------------------------------------------------------------
    # after all batches (main process)
    # ------------------------------------------------------------------
    @property
    def ground_truth(self) -> VISGroundTruth:
        if self._ground_truth is None:
            with get_local_path(
                    self.ann_file,
                    backend_args=self.backend_args) as local_path:
                self._ground_truth = load_vis_ground_truth(local_path)
        return self._ground_truth

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        """Assemble tracks, write and/or evaluate them.

        Args:
            results (list[dict]): Per-frame records from all ranks.

        Returns:
            dict[str, float]: The selected stats (empty with
            ``format_only``).
        """
        logger: MMLogger = MMLogger.get_current_instance()
        gt = self.ground_truth
        pred_results, video_ids = self.format_results(results, gt)
        if self.outfile_prefix:
            self.save_results(pred_results, self.outfile_prefix)
        if self.format_only:
            return dict()
        if not gt.has_annotations:
            raise ValueError(
                f'{self.ann_file} has "annotations": null (hidden ground '
                'truth of an official val/test split), so it cannot be '
                'evaluated locally; set format_only=True and outfile_prefix '
                'to write the CodaLab submission')
        missing = sorted(set(gt.videos) - set(video_ids))
        if missing:
            logger.warning(
                f'{len(missing)} of the {len(gt.videos)} videos of '
                f'{self.ann_file} got no predictions (e.g. {missing[:5]}); '
                'they are left out of the evaluation')
        result = evaluate_vis(gt, pred_results, video_ids)
        logger.info('VIS evaluation\n' + result.summary_table())
        if self.classwise:
            logger.info('per-category AP\n' + result.per_category_table())
        items = self.metric_items or list(result.stats)
        unavailable = [m for m in items if m not in result.stats]
        if unavailable:
            raise KeyError(
                f'metric items {unavailable} need OVIS occlusion labels, '
                f'which {self.ann_file} does not have')
        return OrderedDict((m, result.stats[m]) for m in items)

    def format_results(self, results: List[dict],
                       gt: VISGroundTruth) -> tuple:
        """Turn per-frame records into official-format track results.

        Returns:
            tuple[list[dict], list[int]]: The results list
            ``[{video_id, category_id, score, segmentations}]`` and the ids
            of the videos seen.
        """
        label_to_cat = self._label_to_category(gt)
        per_video: Dict[int, Dict[int, dict]] = dict()
        for record in results:
            video_id = record['video_id']
            if video_id not in gt.videos:
                raise VISFormatError(
                    f'video_id {video_id} of the predictions is not in '
                    f'{self.ann_file}')
            video = gt.videos[video_id]
            frames = per_video.setdefault(video_id, dict())
            frame_id = record['frame_id']
            where = f'video_id {video_id}, frame {frame_id}'
            if not 0 <= frame_id < video.length:
                raise VISFormatError(
                    f'{where}: frame_id outside the video, which has '
                    f'{video.length} frames in {self.ann_file}')
            if (record['video_length'] is not None
                    and record['video_length'] != video.length):
                raise VISFormatError(
                    f'{where}: the sample says the video has '
                    f'{record["video_length"]} frames, {self.ann_file} says '
                    f'{video.length}')
            if frame_id in frames:
                raise VISFormatError(f'{where}: predicted twice')
            frames[frame_id] = record

        pred_results = []
        for video_id in sorted(per_video):
            video = gt.videos[video_id]
            tracks: Dict[int, dict] = dict()
            for frame_id in sorted(per_video[video_id]):
                record = per_video[video_id][frame_id]
                for inst, score, label, rle in zip(record['instances_id'],
                                                   record['scores'],
                                                   record['labels'],
                                                   record['masks']):
                    track = tracks.setdefault(
                        int(inst),
                        dict(
                            frames=[],
                            frame_scores=dict(),
                            scores=[],
                            labels=[],
                            segs=dict()))
                    if frame_id in track['segs']:
                        if self.duplicate_ids == 'error':
                            raise VISFormatError(
                                f'video_id {video_id}, frame {frame_id}: '
                                f'instances_id {inst} appears twice; set '
                                "VISMetric(duplicate_ids='keep_highest') "
                                "(or 'keep_last', as mmdet's "
                                'YouTubeVISMetric) to keep one of them')
                        if (self.duplicate_ids == 'keep_highest' and
                                float(score) <= track['frame_scores'][
                                    frame_id]):
                            continue
                        # replace this frame's earlier detection
                        index = track['frames'].index(frame_id)
                        del track['frames'][index]
                        del track['scores'][index]
                        del track['labels'][index]
                    track['frames'].append(frame_id)
                    track['frame_scores'][frame_id] = float(score)
                    track['scores'].append(float(score))
                    track['labels'].append(int(label))
                    track['segs'][frame_id] = rle
            for inst, track in tracks.items():
                label = int(np.bincount(np.array(track['labels'])).argmax())
                if label not in label_to_cat:
                    raise VISFormatError(
                        f'video_id {video_id}, track {inst}: label {label} '
                        f'has no category in {self.ann_file}')
                pred_results.append(
                    dict(
                        video_id=video_id,
                        score=float(np.mean(track['scores'])),
                        category_id=label_to_cat[label],
                        segmentations=[
                            track['segs'].get(t) for t in range(video.length)
                        ]))
        return pred_results, sorted(per_video)

    def _label_to_category(self, gt: VISGroundTruth) -> Dict[int, int]:
        """Model label -> category id, by class name when names are known."""
        classes = (self.dataset_meta or dict()).get('classes')
        if classes is None:
            return {k: c for k, c in enumerate(gt.category_ids)}
        name_to_id = {c['name']: c['id'] for c in gt.categories}
        return {
            k: name_to_id[name]
            for k, name in enumerate(classes) if name in name_to_id
        }

    @staticmethod
    def save_results(pred_results: List[dict], outfile_prefix: str) -> None:
        """Write ``{prefix}.json`` and a CodaLab zip with ``results.json``."""
        logger: MMLogger = MMLogger.get_current_instance()
        out_dir = osp.dirname(osp.abspath(outfile_prefix))
        os.makedirs(out_dir, exist_ok=True)
        json_file = f'{outfile_prefix}.json'
        zip_file = f'{outfile_prefix}.submission_file.zip'
        mmengine.dump(pred_results, json_file)
        with zipfile.ZipFile(zip_file, 'w', zipfile.ZIP_DEFLATED) as zf:
            zf.write(json_file, 'results.json')
        logger.info(f'VIS results written to {json_file}; submit '
                    f'{zip_file} (holds results.json) to the server')


def _frames_of(sample: Union[BaseDataElement, dict]) -> list:
    """The per-frame samples of one video (or a single frame)."""
    if isinstance(sample, dict):
        if 'video_data_samples' in sample:
            return list(sample['video_data_samples'])
        return [sample]
    if 'video_data_samples' in sample:
        return list(sample.video_data_samples)
    return [sample]


def _to_numpy(value) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    return np.asarray(value)


def _frame_record(frame: Union[BaseDataElement, dict]) -> dict:
    """Compact, picklable predictions of one frame."""
    if isinstance(frame, BaseDataElement):
        meta = frame.metainfo
        pred = frame.get('pred_track_instances')
    else:
        meta = frame
        pred = frame.get('pred_track_instances')
    missing = [k for k in ('video_id', 'frame_id') if k not in meta]
    if missing or pred is None:
        raise KeyError(
            'VISMetric needs per-frame samples with metainfo video_id / '
            'frame_id and pred_track_instances; missing '
            f'{missing or ["pred_track_instances"]}')
    video_id, frame_id = int(meta['video_id']), int(meta['frame_id'])
    where = f'video_id {video_id}, frame {frame_id}'
    get = pred.get if hasattr(pred, 'get') else pred.__getitem__
    fields = dict()
    for key in ('scores', 'labels', 'instances_id', 'masks'):
        value = get(key, None)
        if value is None:
            raise KeyError(f'{where}: pred_track_instances has no {key!r}')
        fields[key] = value
    scores = _to_numpy(fields['scores']).astype(np.float64).reshape(-1)
    labels = _to_numpy(fields['labels']).astype(np.int64).reshape(-1)
    ids = _to_numpy(fields['instances_id']).astype(np.int64).reshape(-1)
    masks = _encode_masks(fields['masks'], where)
    if not len(scores) == len(labels) == len(ids) == len(masks):
        raise ValueError(
            f'{where}: pred_track_instances has {len(scores)} scores, '
            f'{len(labels)} labels, {len(ids)} instances_id and '
            f'{len(masks)} masks')
    ori_shape = meta.get('ori_shape')
    if ori_shape is not None:
        for rle in masks:
            if list(rle['size']) != [int(ori_shape[0]), int(ori_shape[1])]:
                raise ValueError(
                    f'{where}: a mask has size {rle["size"]} but the frame '
                    f'ori_shape is {tuple(ori_shape[:2])}; masks must be at '
                    'the original resolution')
    video_length = meta.get('ori_video_length', meta.get('video_length'))
    return dict(
        video_id=video_id,
        frame_id=frame_id,
        video_length=None if video_length is None else int(video_length),
        scores=scores,
        labels=labels,
        instances_id=ids,
        masks=masks)


def _encode_masks(masks, where: str) -> List[dict]:
    """RLE dicts with ``str`` counts from RLEs or dense (N, H, W) masks."""
    if hasattr(masks, 'masks') and not isinstance(masks, (list, tuple)):
        masks = masks.masks  # mmdet BitmapMasks
    if isinstance(masks, (list, tuple)) and all(
            isinstance(m, dict) for m in masks):
        encoded = []
        for rle in masks:
            counts = rle.get('counts')
            if isinstance(counts, bytes):
                counts = counts.decode('ascii')
            encoded.append(dict(size=list(rle.get('size', ())),
                                counts=counts))
        return encoded
    dense = _to_numpy(masks)
    if dense.size == 0:
        return []
    if dense.ndim != 3:
        raise ValueError(f'{where}: dense masks must have shape (N, H, W), '
                         f'got {dense.shape}')
    if dense.dtype != bool:
        dense = dense > 0.5 if dense.dtype.kind == 'f' else dense != 0
    rles = mask_utils.encode(
        np.asfortranarray(dense.transpose(1, 2, 0).astype(np.uint8)))
    for rle in rles:
        rle['counts'] = rle['counts'].decode('ascii')
    return list(rles)
