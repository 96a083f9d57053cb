# Copyright (c) OpenMMLab. All rights reserved.
import os.path as osp
from typing import Dict, Optional, Sequence

import mmcv
import numpy as np
from mmdet.registry import HOOKS
from mmdet.structures import DetDataSample, TrackDataSample
from mmengine.fileio import get
from mmengine.hooks import Hook
from mmengine.structures import InstanceData
from mmengine.visualization import Visualizer

from .vis_local_visualizer import VISLocalVisualizer


def frame_output_name(img_path: str) -> tuple:
    """``(video name, frame name)`` of a frame path laid out as
    ``.../<video>/<frame>.<ext>`` (YouTube-VIS / OVIS ``JPEGImages``)."""
    folder, file_name = osp.split(osp.normpath(img_path))
    return osp.basename(folder) or 'video', osp.splitext(file_name)[0]


@HOOKS.register_module()
class VISVisualizationHook(Hook):
    """Render whole-video VIS predictions during validation and testing.

    Unlike mmdet's ``TrackVisualizationHook`` (which names output folders
    by ``img_path.split('/')[-3]``, i.e. ``JPEGImages`` for every video of
    the YouTube-VIS/OVIS layout), frame ``.../<video>/<frame>.jpg`` is
    written to ``test_out_dir/<video>/<frame>.jpg``, so every video gets
    its own folder. Drawing uses :class:`VISLocalVisualizer` (the runner's
    visualiser when it is one, else one built here).

    Ground truth (``draw_gt``) is read from the evaluated data set's
    annotations (``runner.test_dataloader.dataset``, or the validation set
    in validation), as test pipelines do not load it; it is drawn left of
    the predictions with each instance's occlusion level when the file has
    one.

    Args:
        draw (bool): Draw at all. Defaults to False.
        interval (int): Draw every ``interval``-th video. Defaults to 1.
        frame_interval (int): Draw every ``frame_interval``-th frame of a
            drawn video. Defaults to 1.
        score_thr (float): Predictions scoring lower are not drawn.
            Defaults to 0.3.
        show (bool): Show frames in a window. Defaults to False.
        wait_time (float): Seconds a shown frame stays. Defaults to 0.
        test_out_dir (str, optional): Output folder in testing; relative
            paths are under ``work_dir/<timestamp>`` (mmdet's convention).
            None sends the frames to the visual backends instead.
        draw_gt (bool): Also draw the ground truth. Defaults to False.
        backend_args (dict, optional): File backend of the frames.
    """

    def __init__(self,
                 draw: bool = False,
                 interval: int = 1,
                 frame_interval: int = 1,
                 score_thr: float = 0.3,
                 show: bool = False,
                 wait_time: float = 0.,
                 test_out_dir: Optional[str] = None,
                 draw_gt: bool = False,
                 backend_args: Optional[dict] = None) -> None:
        if interval < 1 or frame_interval < 1:
            raise ValueError('VISVisualizationHook: interval and '
                             'frame_interval must be >= 1, got '
                             f'{interval} and {frame_interval}')
        self.draw = draw
        self.interval = interval
        self.frame_interval = frame_interval
        self.score_thr = score_thr
        self.show = show
        self.wait_time = wait_time
        self.test_out_dir = test_out_dir
        self.draw_gt = draw_gt
        self.backend_args = backend_args
        self._visualizer: Optional[VISLocalVisualizer] = None
        self._gt_index: Dict[int, int] = {}
        self._num_videos = 0

    def _get_visualizer(self, runner) -> VISLocalVisualizer:
        if self._visualizer is None:
            try:
                current = Visualizer.get_current_instance()
            except RuntimeError:  # no visualiser built (e.g. no runner)
                current = None
            if isinstance(current, VISLocalVisualizer):
                self._visualizer = current
            else:
                self._visualizer = VISLocalVisualizer.get_instance(
                    'vis_visualization_hook')
                self._visualizer.dataset_meta = getattr(
                    current, 'dataset_meta', None)
            if not self._visualizer.dataset_meta:
                model = getattr(runner.model, 'module', runner.model)
                meta = getattr(model, 'dataset_meta', None)
                if meta is None:
                    loader = getattr(runner, 'test_dataloader', None)
                    meta = getattr(
                        getattr(loader, 'dataset', None), 'metainfo', None)
                self._visualizer.dataset_meta = meta
        return self._visualizer

    # ------------------------------------------------------------------
    def _gt_instances(self, dataset, video_id: int, frame_id: int,
                      shape) -> InstanceData:
        if not self._gt_index:
            for idx in range(len(dataset)):
                info = dataset.get_data_info(idx)
                self._gt_index[int(info['video_id'])] = idx
        instances = InstanceData()
        if video_id not in self._gt_index:
            raise KeyError(f'VISVisualizationHook: video_id {video_id} is '
                           'not in the data set, cannot draw ground truth')
        info = dataset.get_data_info(self._gt_index[video_id])
        frame = info['images'][frame_id]
        anns = [a for a in frame['instances'] if 'mask' in a]
        instances.masks = [a['mask'] for a in anns]
        instances.labels = np.array([a['bbox_label'] for a in anns],
                                    dtype=np.int64)
        instances.instances_ids = np.array([a['instance_id'] for a in anns],
                                           dtype=np.int64)
        if any('occlusion' in a for a in anns):
            instances.occlusion = [a.get('occlusion') for a in anns]
        return instances

    def _draw_videos(self, runner, outputs: Sequence[TrackDataSample], dataset,
                     out_dir: Optional[str]) -> None:
        if not self.draw:
            return
        visualizer = self._get_visualizer(runner)
        for video in outputs:
            self._num_videos += 1
            if (self._num_videos - 1) % self.interval:
                continue
            frames = video.video_data_samples \
                if 'video_data_samples' in video else [video]
            for frame_idx, frame in enumerate(frames):
                if frame_idx % self.frame_interval:
                    continue
                img_path = frame.metainfo.get('img_path')
                if img_path is None:
                    raise KeyError(
                        'VISVisualizationHook: frame '
                        f'{frame.metainfo.get("frame_id")} of video '
                        f'{frame.metainfo.get("video_id")} has no img_path '
                        'metainfo to read and name the frame by')
                img_bytes = get(img_path, backend_args=self.backend_args)
                image = mmcv.imfrombytes(img_bytes, channel_order='rgb')
                sample = DetDataSample(metainfo=frame.metainfo)
                if 'pred_track_instances' in frame:
                    sample.pred_track_instances = frame.pred_track_instances
                if self.draw_gt and dataset is not None:
                    sample.gt_instances = self._gt_instances(
                        dataset, int(frame.metainfo['video_id']),
                        int(frame.metainfo['frame_id']), image.shape)
                video_name, frame_name = frame_output_name(img_path)
                out_file = None if out_dir is None else osp.join(
                    out_dir, video_name, frame_name + '.jpg')
                if out_file is not None and \
                        osp.realpath(out_file) == osp.realpath(img_path):
                    raise ValueError(
                        f'VISVisualizationHook: test_out_dir {out_dir} would '
                        f'overwrite the input frame {img_path}; choose an '
                        'output folder outside the data set')
                visualizer.add_datasample(
                    f'{video_name}/{frame_name}',
                    image,
                    data_sample=sample,
                    draw_gt=self.draw_gt,
                    draw_pred=True,
                    show=self.show,
                    wait_time=self.wait_time,
                    out_file=out_file,
                    pred_score_thr=self.score_thr,
                    step=self._num_videos)

    def after_val_iter(self, runner, batch_idx: int, data_batch: dict,
                       outputs: Sequence[TrackDataSample]) -> None:
        """Draw the validation videos to the visual backends."""
        dataset = getattr(runner.val_dataloader, 'dataset', None) \
            if self.draw_gt else None
        self._draw_videos(runner, outputs, dataset, None)

    def before_test(self, runner) -> None:
        self._num_videos = 0

    def after_test_iter(self, runner, batch_idx: int, data_batch: dict,
                        outputs: Sequence[TrackDataSample]) -> None:
        """Draw the test videos to ``test_out_dir/<video>/<frame>.jpg``."""
        out_dir = self.test_out_dir
        if out_dir is not None and not osp.isabs(out_dir):
            out_dir = osp.join(runner.work_dir, runner.timestamp, out_dir)
        dataset = getattr(runner.test_dataloader, 'dataset', None) \
            if self.draw_gt else None
        self._draw_videos(runner, outputs, dataset, out_dir)
