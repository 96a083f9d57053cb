# Copyright (c) OpenMMLab. All rights reserved.
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import pycocotools.mask as mask_util
import torch
import torch.nn.functional as F
from mmdet.models.vis import Mask2FormerVideo
from mmdet.registry import MODELS
from mmdet.structures import TrackSampleList
from mmdet.utils import OptConfigType, OptMultiConfig
from torch import Tensor

from ..heads.mask2former_decoding import run_mask2former_track_decoder
from ..trackers.clip_batching import decode_clips_in_batches
from ..trackers.near_online_inferencer import NearOnlineInferencer
from ..trackers.video_aggregator import VideoResultAggregator

#: ``test_cfg`` keys read by :meth:`NearOnlineMask2FormerVideo.
#: build_inferencer` (anything else is an error, so typos do not pass
#: silently).
TEST_CFG_KEYS = ('clip_length', 'window_length', 'cls_thr', 'max_per_frame',
                 'max_num_instances', 'query_sim_thr', 'nms_iou_thr',
                 'clip_batch_size', 'merge_on_cpu', 'score_aggregation',
                 'window_carry', 'mask_resize', 'inferencer')


class BilinearResizeAggregator(VideoResultAggregator):
    """:class:`VideoResultAggregator` that resizes masks as mmdet's
    ``Mask2FormerTrackHead.predict`` does.

    The stride-4 logits of a frame are resized bilinearly
    (``align_corners=False``) to the padded input size (``mask_stride`` x
    their size), cropped to the unpadded input size, resized bilinearly to
    the original frame size and thresholded at ``sigmoid > mask_thr``
    (``logit > 0`` for the default 0.5), which is the stock head's
    ``mask_pred > 0``. The parent class instead uses ``aligned_bilinear``
    and a nearest resize (MDQE's post-processing). Everything else
    (scores, RLE output) is the parent's. Internal to
    :class:`NearOnlineMask2FormerVideo`.
    """

    def masks_to_rles(self, mask_logits: Tensor) -> List[dict]:
        """Turn stride-4 mask logits into RLEs at the original size.

        Args:
            mask_logits (Tensor): Mask logits, shape (n, h, w).

        Returns:
            list[dict]: n RLE dicts of binary masks of shape ``ori_shape``.
        """
        if mask_logits.shape[0] == 0:
            return []
        height, width = mask_logits.shape[-2:]
        pad_shape = (height * self.mask_stride, width * self.mask_stride)
        img_h, img_w = self.img_shape
        if pad_shape[0] < img_h or pad_shape[1] < img_w:
            raise ValueError(
                'BilinearResizeAggregator: upsampled masks of size '
                f'{pad_shape} are smaller than the input image '
                f'{self.img_shape}; check mask_stride')
        logits = F.interpolate(
            mask_logits[:, None].float(),
            size=pad_shape,
            mode='bilinear',
            align_corners=False)[..., :img_h, :img_w]
        logits = F.interpolate(
            logits, size=self.ori_shape, mode='bilinear', align_corners=False)
        binary = (logits[:, 0].sigmoid() > self.mask_thr).cpu().numpy()
        binary = np.asfortranarray(binary.transpose(1, 2, 0).astype(np.uint8))
        return mask_util.encode(binary)


@MODELS.register_module()
class NearOnlineMask2FormerVideo(Mask2FormerVideo):
    """mmdet's :class:`Mask2FormerVideo` with MDQE's near-online inference.

    Training is exactly the parent's. At test time the video is not decoded
    as one clip (the parent holds the features, attention masks and
    full-resolution masks of all L frames at once) but streamed through
    :class:`NearOnlineInferencer`: the backbone, the pixel decoder and the
    decoder input projections run once per frame
    (:meth:`extract_frame_feats`, frames are independent there), then every
    clip of ``clip_length`` frames (stride 1) is decoded from those cached
    features by the track head's transformer decoder (:meth:`decode_clips`),
    post-processed, linked by :class:`ClipTracker` and aggregated, so memory
    does not grow with the video length (apart from the RLE output; with
    ``VideoStreamDataPreprocessor`` the input video also stays uint8 on the
    CPU). The model has exactly the parent's parameters, so a stock
    ``Mask2FormerVideo`` checkpoint loads as it is.

    What the inferencer needs from the host model, and how it is taken
    from ``Mask2FormerTrackHead``:

    - per-frame features: ``pixel_decoder`` output and
      ``decoder_input_projs`` + ``level_embed`` per level;
    - a clip decoder: the head's query embeddings, 3D sine positional
      encoding of the clip, ``transformer_decoder`` layers with masked
      cross-attention and ``_forward_head``, as in the head's ``forward``;
    - per clip and query: class scores (Q, K), stride-4 mask logits
      (Q, T', h, w) and an embedding (Q, C) to link clips.

    Class scores: Mask2Former classifies each query with a softmax over
    K + 1 classes, the last one "no object". The (Q, K) scores given to the
    inferencer are that softmax with the no-object column dropped (as in the
    stock ``predict_by_feat``), so a query's scores sum to ``1 - p(no
    object)``; ``cls_thr`` applies to these probabilities. Clip embeddings
    are the last decoder layer's queries after the decoder's final
    LayerNorm (the input of ``cls_embed`` and ``mask_embed``).

    Output: for every frame, ``pred_track_instances`` with ``masks`` (RLE
    dicts at ``ori_shape``), ``bboxes``, ``scores``, ``labels``,
    ``instances_id`` and ``track_ids``, as :class:`MDQE` gives, so
    :class:`VISMetric` scores it. Differences to the stock ``predict`` (on
    a video of at most ``clip_length - 1`` frames, which is one clip, the
    masks are those of the stock model):

    - instances: the stock head outputs the top 10 (query, class) pairs of
      the video; here MDQE's clip post-processing (score threshold, query
      de-duplication, removal of empty masks, soft mask-NMS and mask-quality
      rescoring), tracking and the video-level (track, class) selection
      decide. With ``cls_thr=0``, ``query_sim_thr > 1``, ``nms_iou_thr > 1``
      and ``inferencer=dict(min_num_outputs=Q * K)`` every query with a
      non-empty mask is output under every class.
    - mask resizing: ``mask_resize='bilinear'`` (default) resizes as the
      stock head (:class:`BilinearResizeAggregator`);
      ``'aligned_bilinear'`` as MDQE.

    Args:
        backbone (dict, optional): Backbone config.
        track_head (dict, optional): ``Mask2FormerTrackHead`` config.
        test_cfg (dict, optional): Near-online inference settings:

            - ``clip_length`` (int): frames per test clip T. Defaults to 4.
            - ``window_length`` (int): frames whose features are computed
              together. Defaults to 30.
            - ``cls_thr`` (float): score threshold of the clip
              post-processing and the tracker. Defaults to 0.1.
            - ``max_per_frame`` (int): ``max_dets`` of the clip
              post-processing (at most ``10 *`` it queries survive the
              query de-duplication). Defaults to 10.
            - ``max_num_instances`` (int): track slots. Defaults to 100.
            - ``query_sim_thr`` (float): cosine similarity above which a
              query repeats a better one. Defaults to 0.99.
            - ``nms_iou_thr`` (float): soft mask-NMS removal threshold.
              Defaults to 0.5.
            - ``clip_batch_size`` (int, optional): most clips per decoder
              call; None: all clips a window allows. Defaults to None.
            - ``merge_on_cpu`` (bool): track on the CPU. Defaults to False.
            - ``score_aggregation`` (str): ``'window'`` or ``'clip'``.
              Defaults to ``'window'``.
            - ``window_carry`` (bool): MDQE's window carry-over. Defaults
              to True.
            - ``mask_resize`` (str): ``'bilinear'`` or
              ``'aligned_bilinear'``. Defaults to ``'bilinear'``.
            - ``inferencer`` (dict): overrides of the
              :class:`NearOnlineInferencer` arguments (e.g.
              ``output_score_thr``, ``min_num_outputs``, ``cover_tail``,
              ``tracker``).
        data_preprocessor (dict, optional): ``VideoStreamDataPreprocessor``
            (keeps test videos as uint8 on the CPU) or
            ``TrackDataPreprocessor``.
        init_cfg (dict or list[dict], optional): Initialization config.
    """

    def __init__(self,
                 backbone: Optional[dict] = None,
                 track_head: Optional[dict] = None,
                 test_cfg: OptConfigType = None,
                 data_preprocessor: OptConfigType = None,
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(
            backbone=backbone,
            track_head=track_head,
            data_preprocessor=data_preprocessor,
            init_cfg=init_cfg)
        if not hasattr(self.track_head, 'query_feat'):
            # e.g. GridQueryMask2FormerTrackHead, whose queries depend on
            # the frames of the clip
            raise TypeError(
                'NearOnlineMask2FormerVideo decodes clips from the learned '
                'queries (query_feat) of a stock Mask2FormerTrackHead; '
                f'{type(self.track_head).__name__} has none')
        self.test_cfg = dict(test_cfg or {})
        unknown = sorted(set(self.test_cfg) - set(TEST_CFG_KEYS))
        if unknown:
            raise KeyError(
                f'NearOnlineMask2FormerVideo: unknown test_cfg keys {unknown}'
                f'; known keys: {list(TEST_CFG_KEYS)}')
        mask_resize = self.test_cfg.get('mask_resize', 'bilinear')
        if mask_resize not in ('bilinear', 'aligned_bilinear'):
            raise ValueError(
                'NearOnlineMask2FormerVideo: test_cfg.mask_resize must be '
                f"'bilinear' or 'aligned_bilinear', got {mask_resize!r}")

    # ------------------------------------------------------------------
    # per-frame features
    # ------------------------------------------------------------------
    def extract_frame_feats(self, frames: Tensor) -> Dict[str, Tensor]:
        """Backbone, pixel decoder and decoder input projections per frame.

        Every step treats the frames independently (frozen BN, GroupNorm,
        per-image deformable attention, 1x1 convolutions), so the features
        of a frame can be computed once and read by every clip covering it.

        Args:
            frames (Tensor): Normalised, padded frames, shape (M, 3, H, W).

        Returns:
            dict[str, Tensor]:

            - ``mask_features``: (M, C_out, H/4, W/4) pixel decoder output.
            - ``level_{i}`` for i < ``num_transformer_feat_level`` (low to
              high resolution): (M, C, h_i, w_i) projected multi-scale
              memory plus the level embedding, the decoder's keys.
        """
        if frames.dim() != 4:
            raise ValueError('NearOnlineMask2FormerVideo.extract_frame_feats '
                             'expects frames (M, 3, H, W), got '
                             f'{tuple(frames.shape)}')
        head = self.track_head
        mask_features, multi_scale_memorys = head.pixel_decoder(
            self.backbone(frames))
        feats = dict(mask_features=mask_features)
        for level in range(head.num_transformer_feat_level):
            memory = head.decoder_input_projs[level](
                multi_scale_memorys[level])
            feats[f'level_{level}'] = memory + \
                head.level_embed.weight[level][None, :, None, None]
        return feats

    # ------------------------------------------------------------------
    # clip decoding
    # ------------------------------------------------------------------
    def _decode_batch(self, feats: Dict[str, Tensor], frame_inds: Tensor,
                      num_clips: int) -> Tuple[Tensor, Tensor, Tensor]:
        """The track head's transformer decoder on N clips of T' frames.

        Mirrors ``Mask2FormerTrackHead.forward`` after the pixel decoder,
        with the N clips as its batch.

        Args:
            feats (dict): Output of :meth:`extract_frame_feats`.
            frame_inds (Tensor): Rows of ``feats``, N*T' (clip-major).
            num_clips (int): N.

        Returns:
            tuple[Tensor, Tensor, Tensor]: last-layer class logits
            (N, Q, K+1), mask logits (N, Q, T', H/4, W/4) and normalised
            queries (N, Q, C).
        """
        head = self.track_head
        clip_len = frame_inds.numel() // num_clips
        mask_features = feats['mask_features'][frame_inds]
        mask_features = mask_features.view(num_clips, clip_len,
                                           *mask_features.shape[1:])
        keys, key_pos, sizes = [], [], []
        for level in range(head.num_transformer_feat_level):
            memory = feats[f'level_{level}'][frame_inds]
            channels, height, width = memory.shape[1:]
            sizes.append((height, width))
            # (N*T', C, h, w) -> (N, T'*h*w, C)
            keys.append(
                memory.flatten(2).view(num_clips, clip_len,
                                       channels, height * width).permute(
                                           0, 1, 3, 2).flatten(1, 2))
            no_mask = memory.new_zeros((num_clips, clip_len, height, width),
                                       dtype=torch.bool)
            key_pos.append(
                head.decoder_positional_encoding(no_mask).flatten(3).permute(
                    0, 1, 3, 2).flatten(1, 2))
        query_feat = head.query_feat.weight.unsqueeze(0).repeat(
            (num_clips, 1, 1))
        query_embed = head.query_embed.weight.unsqueeze(0).repeat(
            (num_clips, 1, 1))
        cls_preds, mask_preds, query_feat = run_mask2former_track_decoder(
            head,
            query_feat,
            query_embed,
            keys,
            key_pos,
            sizes,
            mask_features,
            all_steps=False)
        embeds = head.transformer_decoder.post_norm(query_feat)
        return cls_preds[-1], mask_preds[-1], embeds

    def decode_clips(
            self,
            feats: Dict[str, Tensor],
            clip_frame_inds: Sequence[Sequence[int]],
            clip_batch_size: Optional[int] = None) -> List[Dict[str, Tensor]]:
        """Decode clips from cached per-frame features.

        Clips of equal length are decoded together (at most
        ``clip_batch_size`` at once). Gradients are not disabled here; call
        under ``torch.no_grad()`` at inference.

        Args:
            feats (dict): Output of :meth:`extract_frame_feats` for M frames.
            clip_frame_inds (Sequence[Sequence[int]]): For every clip, the
                rows of ``feats`` it spans, in temporal order (T' >= 1).
            clip_batch_size (int, optional): Defaults to
                ``test_cfg['clip_batch_size']`` (None: no limit).

        Returns:
            list[dict[str, Tensor]]: One dict per clip, in input order:

            - ``scores``: (Q, K) class probabilities, the softmax over the
              K + 1 classes without the no-object column.
            - ``mask_logits``: (Q, T', H/4, W/4) stride-4 mask logits.
            - ``clip_embeds``: (Q, C) last-layer queries after the
              decoder's LayerNorm.
            - ``frame_inds``: (T',) long, the rows of ``feats`` read.
        """
        if clip_batch_size is None:
            clip_batch_size = self.test_cfg.get('clip_batch_size')

        def decode_batch(frame_inds, num_clips, clip_len):
            cls_pred, mask_pred, embeds = self._decode_batch(
                feats, frame_inds, num_clips)
            scores = F.softmax(cls_pred, dim=-1)[..., :-1]
            return [
                dict(
                    scores=scores[row],
                    mask_logits=mask_pred[row],
                    clip_embeds=embeds[row]) for row in range(num_clips)
            ]

        return decode_clips_in_batches(
            clip_frame_inds,
            feats['mask_features'].shape[0],
            feats['mask_features'].device,
            decode_batch,
            clip_batch_size,
            owner='NearOnlineMask2FormerVideo.decode_clips')

    # ------------------------------------------------------------------
    # inference
    # ------------------------------------------------------------------
    def build_inferencer(self) -> NearOnlineInferencer:
        """Build the near-online inferencer from ``test_cfg`` (see the class
        docstring for the keys and their defaults)."""
        cfg = self.test_cfg
        inferencer = dict(
            type='NearOnlineInferencer',
            num_frames=cfg.get('clip_length', 4),
            window_size=cfg.get('window_length', 30),
            cls_thr=cfg.get('cls_thr', 0.1),
            max_dets=cfg.get('max_per_frame', 10),
            query_sim_thr=cfg.get('query_sim_thr', 0.99),
            nms_iou_thr=cfg.get('nms_iou_thr', 0.5),
            decode_batch_size=cfg.get('clip_batch_size'),
            merge_on_cpu=cfg.get('merge_on_cpu', False),
            score_aggregation=cfg.get('score_aggregation', 'window'),
            window_carry=cfg.get('window_carry', True),
            tracker=dict(
                type='ClipTracker',
                max_num_instances=cfg.get('max_num_instances', 100)),
            # no per-frame tensors shared between frames
            shared_feat_keys=())
        inferencer.update(cfg.get('inferencer', {}))
        inferencer = MODELS.build(inferencer)
        if cfg.get('mask_resize', 'bilinear') == 'bilinear':
            old = inferencer.aggregator
            inferencer.aggregator = BilinearResizeAggregator(
                score_aggregation=old.score_aggregation,
                window_size=old.window_size,
                window_carry=old.window_carry,
                mean_weight=old.mean_weight,
                output_score_thr=old.output_score_thr,
                min_num_outputs=old.min_num_outputs,
                mask_stride=old.mask_stride,
                mask_thr=old.mask_thr)
        return inferencer

    def predict(self,
                inputs,
                data_samples: TrackSampleList,
                rescale: bool = True) -> TrackSampleList:
        """Near-online inference on whole videos of any length.

        Args:
            inputs (Tensor | list): The videos. With
                ``VideoStreamDataPreprocessor``: a list of N uint8 CPU
                videos (L, 3, H, W) (any sequence of frames that supports
                ``len`` and slicing), normalised window by window. With
                ``TrackDataPreprocessor``: (N, L, 3, H, W), already
                normalised and padded.
            data_samples (list[:obj:`TrackDataSample`]): One per video.
            rescale (bool): Masks at the original size. Only True is
                supported. Defaults to True.

        Returns:
            list[:obj:`TrackDataSample`]: Per-frame
            ``pred_track_instances`` (see the class docstring).
        """
        if not rescale:
            raise ValueError('NearOnlineMask2FormerVideo.predict: only '
                             'rescale=True (masks at ori_shape) is supported')
        if isinstance(inputs, Tensor) and inputs.dim() != 5:
            raise ValueError(
                'NearOnlineMask2FormerVideo.predict: a tensor input must be '
                f'(N, L, 3, H, W), got {tuple(inputs.shape)}')
        if len(inputs) != len(data_samples):
            raise ValueError(
                f'NearOnlineMask2FormerVideo.predict: {len(inputs)} videos '
                f'but {len(data_samples)} data samples')
        if not hasattr(self, '_inferencer'):
            self._inferencer = self.build_inferencer()
        streamed = not isinstance(inputs, Tensor)
        prepare_window = getattr(self.data_preprocessor, 'prepare_window',
                                 None) if streamed else None
        if streamed and prepare_window is None:
            raise TypeError(
                'NearOnlineMask2FormerVideo.predict: inputs are a list of '
                'raw videos, but the data preprocessor '
                f'{type(self.data_preprocessor).__name__} has no '
                'prepare_window; use VideoStreamDataPreprocessor')
        results = []
        with torch.no_grad():
            for video, sample in zip(inputs, data_samples):
                results.append(
                    self._inferencer.predict(
                        video,
                        self.extract_frame_feats,
                        self.decode_clips,
                        sample,
                        prepare_window=prepare_window))
        return results
