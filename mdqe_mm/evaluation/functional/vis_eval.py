# Copyright (c) OpenMMLab. All rights reserved.
"""Video instance segmentation AP/AR: YouTube-VIS protocol and OVIS
occlusion AP, vectorised and numpy-2 safe.

The numbers follow the official evaluators exactly (``ytvoseval.py`` of the
YouTube-VIS cocoapi fork, ``oviseval.py`` of the OVIS fork):

* IoU of a prediction and a ground-truth track is spatio-temporal,
  ``sum_t |D_t & G_t| / sum_t |D_t | G_t|``; a frame where only one side has
  a mask adds that mask's area to the union.
* Per (video, category) at most ``max(max_dets)`` predictions are kept,
  highest score first (stable order for ties), and matched greedily to the
  ground truth at every IoU threshold. A ground truth is ignored when it is
  crowd, when its average mask area is outside the size range or (OVIS) when
  its occlusion score is outside the occlusion range; a prediction matched to
  an ignored ground truth is ignored, and an unmatched prediction is ignored
  when its own average area is outside the size range.
* Precision is interpolated at 101 recall points and averaged over IoU
  thresholds, recall points and categories; -1 marks "undefined".

Instead of the official triple loop over videos, categories and pixels, the
intersections of all prediction/ground-truth pairs of a frame come from one
pycocotools ``iou`` call on RLEs, matching is vectorised over IoU thresholds
and ignore settings, and only predictions that reach the lowest IoU threshold
take part in it.
"""
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
from pycocotools import mask as mask_utils

from .vis_tracks import (VISGroundTruth, VISTracks, load_vis_ground_truth,
                         load_vis_results)

__all__ = ['VISEval', 'VISEvalResult', 'evaluate_vis']

# (label, [low, high]) with both ends inclusive, as the official code
DEFAULT_AREA_RANGES = (('all', (0.0, 1e5**2)), ('small', (0.0, 128.0**2)),
                       ('medium', (128.0**2, 256.0**2)), ('large',
                                                          (256.0**2, 1e5**2)))
DEFAULT_OCCLUSION_RANGES = (('light', (0.0, 0.25)), ('medium', (0.25, 0.5)),
                            ('heavy', (0.5, 1.0)))
_ALL_OCCLUSION = (0.0, 1.0)


@dataclass
class VISEvalResult:
    """What :meth:`VISEval.evaluate` returns.

    T IoU thresholds, R recall points, K categories, S ignore settings (size
    ranges with occlusion 'all', then occlusion ranges with size 'all'), M
    max-detection limits.

    Attributes:
        stats (dict[str, float]): Summary metrics in [0, 1], -1 where
            undefined: AP, AP50, AP75, APs, APm, APl, [APso, APmo, APho,]
            AR1, AR10, AR100, ARs, ARm, ARl[, ARso, ARmo, ARho]. The bracketed
            ones exist only when the ground truth has occlusion labels.
        per_category_ap (dict[str, float]): AP of each category by name
            (-1 for a category without any non-ignored ground truth).
        precision (np.ndarray): (T, R, K, S, M) interpolated precision.
        recall (np.ndarray): (T, K, S, M) final recall.
        settings (list[tuple[str, str]]): (size label, occlusion label) of
            each of the S settings.
        categories (list[dict]): The K categories, sorted by id.
    """
    stats: Dict[str, float]
    per_category_ap: Dict[str, float]
    precision: np.ndarray
    recall: np.ndarray
    settings: List[Tuple[str, str]]
    categories: List[dict]

    def to_dict(self) -> Dict[str, float]:
        """Flat ``{name: value}``: the summary stats, then ``AP_<category>``.
        """
        flat = dict(self.stats)
        flat.update(
            {f'AP_{name}': ap
             for name, ap in self.per_category_ap.items()})
        return flat

    def summary_table(self) -> str:
        """The summary stats as a text table (values in percent)."""
        from terminaltables import AsciiTable
        names = list(self.stats)
        rows = [['metric', 'value']]
        rows += [[n, _percent(self.stats[n])] for n in names]
        return AsciiTable(rows).table

    def per_category_table(self, num_columns: int = 6) -> str:
        """Per-category AP as a text table (values in percent)."""
        from terminaltables import AsciiTable
        items = [(n, _percent(v)) for n, v in self.per_category_ap.items()]
        num_columns = min(num_columns, 2 * len(items)) or 2
        flat = [x for item in items for x in item]
        pairs = num_columns // 2
        rows = [['category', 'AP'] * pairs]
        for start in range(0, len(flat), num_columns):
            row = flat[start:start + num_columns]
            rows.append(row + [''] * (num_columns - len(row)))
        table = AsciiTable(rows)
        table.inner_footing_row_border = False
        return table.table


def _percent(value: float) -> str:
    return 'n/a' if value < 0 else f'{100.0 * value:.1f}'


class VISEval:
    """YouTube-VIS / OVIS evaluator over RLE tracks.

    Args:
        ground_truth (VISGroundTruth): From :func:`load_vis_ground_truth`.
        iou_thrs (Sequence[float], optional): IoU thresholds. Defaults to
            the official 0.50:0.05:0.95.
        rec_thrs (Sequence[float], optional): Recall points. Defaults to the
            official 101 points 0:0.01:1.
        max_dets (Sequence[int]): Predictions kept per (video, category),
            three increasing values. Defaults to (1, 10, 100).
        area_ranges (Sequence[tuple[str, tuple[float, float]]], optional):
            Labelled inclusive average-area ranges, 'all' first. Defaults to
            all / small (<= 128^2) / medium / large (>= 256^2).
        occlusion_ranges (Sequence[tuple[str, tuple[float, float]]],
            optional): Labelled inclusive occlusion-score ranges, used when
            the ground truth has occlusion labels. Defaults to light [0,
            0.25], medium [0.25, 0.5], heavy [0.5, 1].
    """

    def __init__(self,
                 ground_truth: VISGroundTruth,
                 iou_thrs: Optional[Sequence[float]] = None,
                 rec_thrs: Optional[Sequence[float]] = None,
                 max_dets: Sequence[int] = (1, 10, 100),
                 area_ranges: Optional[Sequence[tuple]] = None,
                 occlusion_ranges: Optional[Sequence[tuple]] = None) -> None:
        if not isinstance(ground_truth, VISGroundTruth):
            raise TypeError('ground_truth must be a VISGroundTruth (see '
                            f'load_vis_ground_truth), got {ground_truth!r}')
        self.ground_truth = ground_truth
        # the official linspace calls, so that thresholds match bit for bit
        self.iou_thrs = np.linspace(
            .5, 0.95, int(np.round((0.95 - .5) / .05)) + 1,
            endpoint=True) if iou_thrs is None else np.asarray(
                iou_thrs, np.float64)
        self.rec_thrs = np.linspace(
            .0, 1.00, int(np.round((1.00 - .0) / .01)) + 1,
            endpoint=True) if rec_thrs is None else np.asarray(
                rec_thrs, np.float64)
        if (self.iou_thrs.ndim != 1 or len(self.iou_thrs) == 0
                or (np.diff(self.iou_thrs) <= 0).any()):
            raise ValueError('iou_thrs must be increasing')
        if (self.rec_thrs.ndim != 1 or len(self.rec_thrs) == 0
                or (np.diff(self.rec_thrs) <= 0).any()):
            raise ValueError('rec_thrs must be increasing')
        self.max_dets = [int(m) for m in max_dets]
        if (len(self.max_dets) != 3 or self.max_dets != sorted(self.max_dets)
                or self.max_dets[0] < 1):
            raise ValueError('max_dets must be three increasing positive '
                             f'ints, got {max_dets}')
        self.area_ranges = list(area_ranges or DEFAULT_AREA_RANGES)
        self.occlusion_ranges = list(occlusion_ranges
                                     or DEFAULT_OCCLUSION_RANGES)
        for label, (low, high) in self.area_ranges + self.occlusion_ranges:
            if not low <= high:
                raise ValueError(f'range {label!r} has low > high')
        if self.area_ranges[0][0] != 'all':
            raise ValueError("the first area range must be 'all'")

    # ------------------------------------------------------------------
    # public API
    # ------------------------------------------------------------------
    def evaluate(self,
                 predictions: Dict[int, VISTracks],
                 video_ids: Optional[Sequence[int]] = None) -> VISEvalResult:
        """Evaluate predictions of some or all videos.

        Args:
            predictions (dict[int, VISTracks]): From
                :func:`load_vis_results`; videos without an entry have no
                predictions.
            video_ids (Sequence[int], optional): The videos to evaluate.
                Defaults to every video of the ground truth (as the
                official code does).

        Returns:
            VISEvalResult: Stats, per-category AP, precision and recall.
        """
        gt = self.ground_truth
        if not gt.has_annotations:
            raise ValueError(
                f'{gt.source} has no annotations ("annotations": null, as in '
                'the official val/test files): only formatting results for '
                'the evaluation server is possible there')
        video_ids = sorted(gt.videos) if video_ids is None else sorted(
            set(video_ids))
        unknown = [v for v in video_ids if v not in gt.videos]
        if unknown:
            raise ValueError(f'videos {unknown[:5]} are not in {gt.source}')
        extra = sorted(set(predictions) - set(video_ids))
        if extra:
            raise ValueError(f'there are predictions for videos {extra[:5]} '
                             'that are not being evaluated')

        settings = self._settings()
        cat_index = {c: k for k, c in enumerate(gt.category_ids)}
        num_cats, num_settings = len(cat_index), len(settings)
        num_thrs = len(self.iou_thrs)
        positives = np.zeros((num_cats, num_settings), np.int64)
        collected = []
        for video_rank, video_id in enumerate(video_ids):
            gts = gt.tracks[video_id]
            gt_cats = np.array([cat_index[c] for c in gts.category_ids],
                               np.int64)
            gt_ignore = self._gt_ignore(gts, settings)
            np.add.at(positives, gt_cats, (~gt_ignore).T.astype(np.int64))
            dts = predictions.get(video_id)
            if dts is None or len(dts) == 0:
                continue
            collected.append(
                self._evaluate_video(gts, gt_cats, gt_ignore, dts, cat_index,
                                     settings, video_rank))
        if collected:
            dets = {
                key: np.concatenate([c[key] for c in collected], axis=-1)
                for key in collected[0]
            }
        else:
            dets = dict(
                category=np.zeros(0, np.int64),
                score=np.zeros(0),
                video_rank=np.zeros(0, np.int64),
                rank=np.zeros(0, np.int64),
                matched=np.zeros((num_settings, num_thrs, 0), bool),
                ignored=np.zeros((num_settings, num_thrs, 0), bool))
        precision, recall = self._accumulate(dets, positives)
        return self._summarize(precision, recall, settings)

    # ------------------------------------------------------------------
    # per-video work
    # ------------------------------------------------------------------
    def _settings(self) -> List[Tuple[str, str, tuple, tuple]]:
        settings = [(label, 'all', tuple(rng), _ALL_OCCLUSION)
                    for label, rng in self.area_ranges]
        if self.ground_truth.has_occlusion:
            settings += [('all', label, tuple(self.area_ranges[0][1]),
                          tuple(rng))
                         for label, rng in self.occlusion_ranges]
        return settings

    def _gt_ignore(self, gts: VISTracks, settings: list) -> np.ndarray:
        """(S, G) bool: crowd, or outside the size / occlusion range."""
        area = gts.avg_areas[None]
        low = np.array([s[2][0] for s in settings])[:, None]
        high = np.array([s[2][1] for s in settings])[:, None]
        ignore = gts.iscrowd[None] | (area < low) | (area > high)
        if gts.occlusion_scores is not None:
            occ = gts.occlusion_scores[None]
            occ_low = np.array([s[3][0] for s in settings])[:, None]
            occ_high = np.array([s[3][1] for s in settings])[:, None]
            ignore |= (occ < occ_low) | (occ > occ_high)
        return ignore

    def _evaluate_video(self, gts: VISTracks, gt_cats: np.ndarray,
                        gt_ignore: np.ndarray, dts: VISTracks,
                        cat_index: Dict[int, int], settings: list,
                        video_rank: int) -> Dict[str, np.ndarray]:
        """Match one video's predictions, category by category.

        Returns:
            dict: per kept prediction D: ``category`` (D,), ``score`` (D,),
            ``video_rank`` (D,), ``rank`` (D,) (score rank inside its
            category of this video), ``matched`` and ``ignored`` (S, T, D).
        """
        num_settings, num_thrs = len(settings), len(self.iou_thrs)
        det_cats = np.array([cat_index[c] for c in dts.category_ids],
                            np.int64)
        # stable: equal scores keep the order of the results list
        order = np.lexsort((-dts.scores, det_cats))
        sorted_cats = det_cats[order]
        group_start = np.searchsorted(sorted_cats, sorted_cats, side='left')
        rank = np.arange(len(order)) - group_start
        keep = rank < self.max_dets[-1]
        order, rank, sorted_cats = order[keep], rank[keep], sorted_cats[keep]

        low = np.array([s[2][0] for s in settings])[:, None]
        high = np.array([s[2][1] for s in settings])[:, None]
        det_area = dts.avg_areas[order][None]
        area_out = (det_area < low) | (det_area > high)  # (S, D)
        matched = np.zeros((num_settings, num_thrs, len(order)), bool)
        ignored = np.broadcast_to(area_out[:, None], matched.shape).copy()

        min_thr = min(self.iou_thrs.min(), 1 - 1e-10)
        for cat in np.intersect1d(sorted_cats, gt_cats):
            det_sel = np.flatnonzero(sorted_cats == cat)
            gt_sel = np.flatnonzero(gt_cats == cat)
            cat_ious = _sparse_track_ious(dts, order[det_sel], gts, gt_sel,
                                          min_thr)
            if cat_ious is None:
                continue
            match = _greedy_match(cat_ious, gt_ignore[:, gt_sel],
                                  gts.iscrowd[gt_sel], self.iou_thrs)
            hit = match >= 0
            # ignore flag of the matched ground truth for each det
            s_idx = np.arange(num_settings)[:, None, None]
            hit_ignore = gt_ignore[:, gt_sel][s_idx, np.maximum(match, 0)]
            matched[:, :, det_sel] = hit
            ignored[:, :, det_sel] = np.where(hit, hit_ignore,
                                              ignored[:, :, det_sel])
        return dict(
            category=sorted_cats,
            score=dts.scores[order],
            video_rank=np.full(len(order), video_rank, np.int64),
            rank=rank,
            matched=matched,
            ignored=ignored)

    # ------------------------------------------------------------------
    # dataset-level accumulation
    # ------------------------------------------------------------------
    def _accumulate(self, dets: Dict[str, np.ndarray],
                    positives: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """Precision (T, R, K, S, M) and recall (T, K, S, M)."""
        num_thrs, num_rec = len(self.iou_thrs), len(self.rec_thrs)
        num_cats, num_settings = positives.shape
        num_max = len(self.max_dets)
        precision = -np.ones(
            (num_thrs, num_rec, num_cats, num_settings, num_max))
        recall = -np.ones((num_thrs, num_cats, num_settings, num_max))
        # Officially the dets of a category are concatenated video by video
        # (sorted video ids), each in score order, then stably sorted by
        # score: that is a lexicographic sort on (-score, video, rank).
        order = np.lexsort((dets['rank'], dets['video_rank'], -dets['score']))
        order = order[np.argsort(dets['category'][order], kind='stable')]
        bounds = np.searchsorted(dets['category'][order],
                                 np.arange(num_cats + 1))
        kept_tp = dets['matched'] & ~dets['ignored']
        kept_fp = ~dets['matched'] & ~dets['ignored']
        for k in range(num_cats):
            cat_dets = order[bounds[k]:bounds[k + 1]]
            for m, max_det in enumerate(self.max_dets):
                sel = cat_dets[dets['rank'][cat_dets] < max_det]
                for s in range(num_settings):
                    num_pos = positives[k, s]
                    if num_pos == 0:
                        continue
                    p, r = self._precision_recall(kept_tp[s][:, sel],
                                                  kept_fp[s][:, sel], num_pos)
                    precision[:, :, k, s, m] = p
                    recall[:, k, s, m] = r
        return precision, recall

    def _precision_recall(self, tps: np.ndarray, fps: np.ndarray,
                          num_pos: int) -> Tuple[np.ndarray, np.ndarray]:
        """Interpolated precision (T, R) and final recall (T,) of one
        (category, setting, max-dets) cell; tps/fps are (T, D) in score order.
        """
        num_thrs, num_dets = tps.shape
        precision = np.zeros((num_thrs, len(self.rec_thrs)))
        if num_dets == 0:
            return precision, np.zeros(num_thrs)
        tp = np.cumsum(tps, axis=1).astype(np.float64)
        fp = np.cumsum(fps, axis=1).astype(np.float64)
        rc = tp / num_pos
        pr = tp / (fp + tp + np.spacing(1))
        # precision envelope: the best precision at any higher recall
        pr = np.maximum.accumulate(pr[:, ::-1], axis=1)[:, ::-1]
        for t in range(num_thrs):
            inds = np.searchsorted(rc[t], self.rec_thrs, side='left')
            valid = inds < num_dets
            precision[t, valid] = pr[t, inds[valid]]
        return precision, rc[:, -1]

    def _summarize(self, precision: np.ndarray, recall: np.ndarray,
                   settings: list) -> VISEvalResult:
        labels = [(s[0], s[1]) for s in settings]
        md_small, md_mid, md_big = self.max_dets
        specs = [('AP', True, None, ('all', 'all'), md_big),
                 ('AP50', True, .5, ('all', 'all'), md_big),
                 ('AP75', True, .75, ('all', 'all'), md_big)]
        size_names = dict(small='APs', medium='APm', large='APl')
        occ_names = dict(light='APso', medium='APmo', heavy='APho')
        for label, _ in self.area_ranges[1:]:
            specs.append((size_names.get(label, f'AP_{label}'), True, None,
                          (label, 'all'), md_big))
        if self.ground_truth.has_occlusion:
            for label, _ in self.occlusion_ranges:
                specs.append((occ_names.get(label, f'AP_occ_{label}'), True,
                              None, ('all', label), md_big))
        specs += [(f'AR{md}', False, None, ('all', 'all'), md)
                  for md in (md_small, md_mid, md_big)]
        for label, _ in self.area_ranges[1:]:
            name = 'AR' + size_names.get(label, f'AP_{label}')[2:]
            specs.append((name, False, None, (label, 'all'), md_big))
        if self.ground_truth.has_occlusion:
            for label, _ in self.occlusion_ranges:
                name = 'AR' + occ_names.get(label, f'AP_occ_{label}')[2:]
                specs.append((name, False, None, ('all', label), md_big))

        stats = dict()
        for name, is_ap, iou_thr, setting, max_det in specs:
            s_ind = [labels.index(setting)]
            m_ind = [self.max_dets.index(max_det)]
            values = precision if is_ap else recall
            if iou_thr is not None:
                values = values[np.where(iou_thr == self.iou_thrs)[0]]
            if is_ap:
                values = values[:, :, :, s_ind, m_ind]
            else:
                values = values[:, :, s_ind, m_ind]
            stats[name] = _mean_defined(values)

        per_category = dict()
        names = [c['name'] for c in self.ground_truth.categories]
        for k, cat in enumerate(self.ground_truth.categories):
            name = cat['name'] if names.count(
                cat['name']) == 1 else f'{cat["name"]}_{cat["id"]}'
            per_category[name] = _mean_defined(precision[:, :, k, 0, -1])
        return VISEvalResult(
            stats=stats,
            per_category_ap=per_category,
            precision=precision,
            recall=recall,
            settings=labels,
            categories=list(self.ground_truth.categories))


def _sparse_track_ious(dts: VISTracks, det_rows: np.ndarray,
                       gts: VISTracks, gt_cols: np.ndarray,
                       min_thr: float) -> Optional[np.ndarray]:
    """IoUs of prediction rows vs ground-truth columns, exact where >= the
    lowest threshold.

    IoUs below the lowest threshold never take part in matching, so pairs
    whose upper bound ``sum_t min(|D_t|, |G_t|)`` based IoU is already below
    it are not intersected at all (left at 0). The bound is computed from
    integer areas, so the decision is exact.

    Returns:
        np.ndarray | None: (len(det_rows), len(gt_cols)) float64, or None
        when no pair can reach ``min_thr``.
    """
    det_areas = dts.frame_areas[det_rows]
    gt_areas = gts.frame_areas[gt_cols]
    det_total = det_areas.sum(1)[:, None]
    gt_total = gt_areas.sum(1)[None]
    best_inter = np.minimum(det_areas[:, None], gt_areas[None]).sum(-1)
    best_union = det_total + gt_total - best_inter
    bound = np.divide(
        best_inter,
        best_union,
        out=np.zeros(best_inter.shape),
        where=best_union > 0)
    maybe = bound >= min_thr
    if not maybe.any():
        return None
    rows = np.flatnonzero(maybe.any(1))
    cols = np.flatnonzero(maybe.any(0))
    inter = _intersections(dts, det_rows[rows], gts, gt_cols[cols])
    union = det_total[rows] + gt_total[:, cols] - inter
    ious = np.zeros(best_inter.shape)
    ious[np.ix_(rows, cols)] = np.divide(
        inter, union, out=np.zeros(inter.shape), where=union > 0)
    return ious


def _intersections(dts: VISTracks, det_rows: np.ndarray, gts: VISTracks,
                   gt_rows: np.ndarray) -> np.ndarray:
    """Sum over frames of |D_t & G_t|, (len(det_rows), len(gt_rows)) int64.

    pycocotools' crowd IoU of a frame is ``|D & G| / |D|``; times ``|D|`` and
    rounded it gives the exact integer intersection, and one call covers all
    pairs of a frame.
    """
    inter = np.zeros((len(det_rows), len(gt_rows)), np.int64)
    det_present = dts.present[det_rows]
    gt_present = gts.present[gt_rows]
    det_areas = dts.frame_areas[det_rows]
    crowd_flags = np.ones(len(gt_rows), np.uint8)
    for t in np.flatnonzero(det_present.any(0) & gt_present.any(0)):
        det_at = np.flatnonzero(det_present[:, t])
        gt_at = np.flatnonzero(gt_present[:, t])
        det_rles = [dts.segmentations[det_rows[i]][t] for i in det_at]
        gt_rles = [gts.segmentations[gt_rows[j]][t] for j in gt_at]
        overlap = np.asarray(
            mask_utils.iou(det_rles, gt_rles, crowd_flags[:len(gt_at)]))
        inter[np.ix_(det_at, gt_at)] += np.rint(
            overlap * det_areas[det_at, t][:, None]).astype(np.int64)
    return inter


def _mean_defined(values: np.ndarray) -> float:
    defined = values[values > -1]
    return float(np.mean(defined)) if len(defined) else -1.0


def _greedy_match(ious: np.ndarray, gt_ignore: np.ndarray,
                  iscrowd: np.ndarray, iou_thrs: np.ndarray) -> np.ndarray:
    """Official greedy matching, vectorised over settings and thresholds.

    Detections (rows of ``ious``, in score order) are matched one after the
    other. For each, the official loop scans the ground truths with
    non-ignored ones first and picks the best IoU >= threshold among those
    not yet taken (crowds can be taken many times), preferring the later one
    on ties; it only falls back to ignored ground truths when no non-ignored
    one qualifies.

    Args:
        ious (np.ndarray): (D, G) IoUs, detections in score order.
        gt_ignore (np.ndarray): (S, G) bool ignore flag per setting.
        iscrowd (np.ndarray): (G,) bool.
        iou_thrs (np.ndarray): (T,) thresholds.

    Returns:
        np.ndarray: (S, T, D) index of the matched ground truth, -1 if none.
    """
    num_dets, num_gts = ious.shape
    num_settings = gt_ignore.shape[0]
    thrs = np.minimum(iou_thrs, 1 - 1e-10)
    match = np.full((num_settings, len(thrs), num_dets), -1, np.int64)
    if num_gts == 0 or num_dets == 0:
        return match
    taken = np.zeros((num_settings, len(thrs), num_gts), bool)
    ignore = gt_ignore[:, None, :]
    reusable = iscrowd[None, None, :]
    s_idx, t_idx = np.meshgrid(
        np.arange(num_settings), np.arange(len(thrs)), indexing='ij')
    for d in np.flatnonzero(ious.max(axis=1) >= thrs.min()):
        iou = ious[d]
        free = (iou[None, None] >= thrs[None, :, None]) & ~(taken
                                                            & ~reusable)
        regular = free & ~ignore
        has_regular = regular.any(axis=-1, keepdims=True)
        candidates = np.where(has_regular, regular, free & ignore)
        key = np.where(candidates, iou[None, None], -1.0)
        # the last maximum, as the official scan keeps the later one on ties
        best = num_gts - 1 - np.argmax(key[..., ::-1], axis=-1)
        found = candidates.any(axis=-1)
        match[:, :, d] = np.where(found, best, -1)
        taken[s_idx[found], t_idx[found], best[found]] = True
    return match


def evaluate_vis(annotation: Union[str, dict, VISGroundTruth],
                 results: Union[str, Sequence[dict]],
                 video_ids: Optional[Sequence[int]] = None,
                 **kwargs) -> VISEvalResult:
    """Evaluate a results list against an annotation file in one call.

    Args:
        annotation (str | dict | VISGroundTruth): YouTube-VIS / OVIS
            ground truth (path, loaded JSON or parsed).
        results (str | list[dict]): Official results format (path or list).
        video_ids (Sequence[int], optional): Evaluate only these videos.
            Defaults to every video of the ground truth.
        **kwargs: Passed to :class:`VISEval`.

    Returns:
        VISEvalResult: The metrics.
    """
    gt = annotation if isinstance(
        annotation, VISGroundTruth) else load_vis_ground_truth(annotation)
    predictions = load_vis_results(results, gt, video_ids)
    return VISEval(gt, **kwargs).evaluate(predictions, video_ids)
