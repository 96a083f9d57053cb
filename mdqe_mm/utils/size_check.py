# Copyright (c) OpenMMLab. All rights reserved.
"""Frame size checks where data enters (dataset loading, inference)."""
from typing import Optional, Sequence, Tuple

__all__ = [
    'FrameSizeError', 'read_image_size', 'check_frame_sizes',
    'check_inference_frames'
]

# EXIF orientations that rotate by 90 degrees (cv2 and PIL's exif_transpose
# apply them when decoding, so the decoded frame is transposed)
_TRANSPOSING_ORIENTATIONS = (5, 6, 7, 8)


class FrameSizeError(ValueError):
    """A frame whose size differs from the declared or the first frame's."""


def read_image_size(path: str) -> Tuple[int, int]:
    """``(height, width)`` of an image as decoders return it, reading only
    the file header (PIL is lazy); EXIF rotations by 90 degrees swap it.

    Raises:
        OSError: When the file cannot be opened or is not an image; the
            message names the file.
    """
    from PIL import Image, UnidentifiedImageError
    try:
        with Image.open(path) as img:
            width, height = img.size
            orientation = None
            if img.format in ('JPEG', 'TIFF', 'WEBP', 'PNG'):
                try:
                    orientation = img.getexif().get(0x0112)
                except Exception:  # a damaged EXIF block: no rotation
                    orientation = None
    except UnidentifiedImageError:
        raise OSError(f'{path} is not an image file PIL can read') from None
    except OSError as err:
        raise OSError(f'cannot read image {path}: {err}') from None
    if orientation in _TRANSPOSING_ORIENTATIONS:
        height, width = width, height
    return int(height), int(width)


def check_frame_sizes(sizes: Sequence[Tuple[int, int]],
                      video: str = 'the video',
                      frame_names: Optional[Sequence[str]] = None,
                      what: str = 'size') -> None:
    """Raise :class:`FrameSizeError` unless all ``sizes`` equal the first.

    Args:
        sizes (Sequence[tuple[int, int]]): ``(h, w)`` of every frame.
        video (str): The video, for the message.
        frame_names (Sequence[str], optional): Frame names (file or index)
            for the message; indices by default.
        what (str): What is compared (e.g. ``'original size'``).
    """
    if not sizes:
        return
    first = tuple(int(s) for s in sizes[0][:2])
    for index, size in enumerate(sizes):
        size = tuple(int(s) for s in size[:2])
        if size != first:
            name = frame_names[index] if frame_names is not None else \
                f'frame {index}'
            first_name = frame_names[0] if frame_names is not None else \
                'frame 0'
            raise FrameSizeError(
                f'{video}: {name} has {what} {size[0]}x{size[1]} (h x w) but '
                f'{first_name} has {first[0]}x{first[1]}; every frame of a '
                'video must have the same size')


def check_inference_frames(frames, data_sample=None) -> None:
    """Check, before inference, that every frame of a video has the first
    frame's size.

    Args:
        frames (Tensor | Sequence[Tensor]): The video, (L, C, H, W) or L
            tensors (C, H, W); the sizes of a list or tuple are compared,
            other (lazy) sequences are left to the caller.
        data_sample (TrackDataSample, optional): Per-frame metainfo; its
            ``ori_shape`` and ``img_shape`` are compared as well (results
            are produced at the first frame's ``ori_shape``).

    Raises:
        FrameSizeError: Naming the video, the frame (index and file when
            known) and both sizes.
    """
    metas = [data_sample[i].metainfo for i in range(len(data_sample))] \
        if data_sample is not None else []
    video = 'the video'
    if metas and metas[0].get('video_id') is not None:
        video = f'video {metas[0]["video_id"]}'

    def names(count):
        out = []
        for index in range(count):
            path = metas[index].get('img_path') if index < len(metas) else \
                None
            out.append(f'frame {index}' + (f' ({path})' if path else ''))
        return out

    # Only a materialised list is checked here: a lazy sequence (a decoder
    # that streams the video) would be read twice; the inferencer checks
    # its frames window by window as it reads them.
    if isinstance(frames, (list, tuple)):
        check_frame_sizes([tuple(f.shape[-2:]) for f in frames], video,
                          names(len(frames)), 'input size')
    for key, what in (('ori_shape', 'original size'), ('img_shape',
                                                       'resized size')):
        shapes = [m.get(key) for m in metas]
        if shapes and all(s is not None for s in shapes):
            check_frame_sizes(shapes, video, names(len(shapes)), what)
