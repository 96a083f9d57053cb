# Copyright (c) OpenMMLab. All rights reserved.
"""Validation and statistics of COCO run-length encoded (RLE) masks.

pycocotools parses a compressed RLE string without any check: a truncated
string, a foreign character or a run total that differs from ``h * w`` all
silently give a garbage mask (and ``merge`` can even loop forever on run totals
that disagree). The evaluator therefore decodes every counts string itself,
vectorised over a whole batch of strings with numpy, and only hands checked
RLEs to pycocotools. The same decoding yields the mask areas for free.

Compressed format (``maskApi.c``, ``rleToString``): every run length is
written in chunks of 5 bits, least significant first, each chunk stored as
``chr(48 + chunk)``; bit ``0x20`` of a chunk says "more chunks follow" and
bit ``0x10`` of the last chunk is the sign. From the fourth run on, the value
stored is the difference to the run two places earlier.
"""
import math
import numbers
from typing import Optional, Sequence, Tuple, Union

import numpy as np
from pycocotools import mask as mask_utils

__all__ = [
    'VISFormatError', 'compressed_counts_stats', 'normalize_rle',
    'describe_bad_counts'
]

_CHAR_OFFSET = 48
_CHUNK_VALUE_MAX = 63
_MORE_BIT = 0x20
_SIGN_BIT = 0x10
_DATA_MASK = 0x1f
# pycocotools accumulates a run in a 32-bit int: more than 7 chunks of 5 bits
# cannot come from a valid encoder.
_MAX_CHUNKS = 7
_MAX_RUN = 2**32 - 1


class VISFormatError(ValueError):
    """Ground truth or results that do not fit the YouTube-VIS format."""


def _empty_stats(num: int) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    return (np.zeros(num, np.int64), np.zeros(num, np.int64),
            np.zeros(num, bool))


def _to_ascii_buffer(counts: Sequence[Union[str, bytes]]
                     ) -> Tuple[Optional[bytes], np.ndarray]:
    """Join counts strings into one byte buffer.

    Returns:
        tuple: the buffer (None if some string is not ASCII text/bytes) and a
        bool array, shape (S,), marking the strings that are not.
    """
    num = len(counts)
    not_text = np.zeros(num, bool)
    try:
        if all(type(c) is str for c in counts):
            return ''.join(counts).encode('ascii'), not_text
        if all(type(c) is bytes for c in counts):
            return b''.join(counts), not_text
    except UnicodeEncodeError:
        pass
    parts = []
    for i, c in enumerate(counts):
        if isinstance(c, str):
            try:
                c = c.encode('ascii')
            except UnicodeEncodeError:
                not_text[i] = True
                c = b''
        elif not isinstance(c, (bytes, bytearray)):
            not_text[i] = True
            c = b''
        parts.append(bytes(c))
    if not_text.any():
        return None, not_text
    return b''.join(parts), not_text


def compressed_counts_stats(
    counts: Sequence[Union[str, bytes]]
) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Decode a batch of compressed RLE counts strings.

    Args:
        counts (Sequence[str | bytes]): S compressed counts strings.

    Returns:
        tuple[np.ndarray, np.ndarray, np.ndarray]: ``areas`` (S,) int64, the
        number of foreground pixels; ``totals`` (S,) int64, the sum of all
        runs, which must equal ``h * w``; ``bad`` (S,) bool, True for a
        string that is not a well-formed encoding. Areas and totals are only
        meaningful when no string of the batch is bad.
    """
    num = len(counts)
    areas, totals, bad = _empty_stats(num)
    if num == 0:
        return areas, totals, bad
    buffer, not_text = _to_ascii_buffer(counts)
    if buffer is None:
        return areas, totals, not_text
    lengths = np.fromiter(map(len, counts), np.int64, num)
    string_ends = np.cumsum(lengths)
    chunks = np.frombuffer(buffer, np.uint8) - np.uint8(_CHAR_OFFSET)
    bad |= lengths == 0
    # characters below '0' wrap around to large values as well
    if len(chunks) and chunks.max() > _CHUNK_VALUE_MAX:
        foreign = np.flatnonzero(chunks > _CHUNK_VALUE_MAX)
        bad[np.searchsorted(string_ends, foreign, side='right')] = True
    is_last_chunk = chunks < _MORE_BIT
    nonempty = np.flatnonzero(lengths > 0)
    bad[nonempty] |= ~is_last_chunk[string_ends[nonempty] - 1]
    if bad.any():
        return areas, totals, bad

    token_ends = np.flatnonzero(is_last_chunk)
    # value of each token's last chunk: 4 data bits and a two's complement
    # sign bit; byte arithmetic, as continuation chunks are rare
    signed = chunks.view(np.int8)
    values = ((signed & 0x0f) - (signed & _SIGN_BIT))[token_ends].astype(
        np.int64)
    if len(token_ends) != len(chunks):
        continuation = np.flatnonzero(~is_last_chunk)
        owner = np.searchsorted(token_ends, continuation)
        multi, num_more = np.unique(owner, return_counts=True)
        if num_more.max() >= _MAX_CHUNKS:
            too_long = token_ends[multi[num_more >= _MAX_CHUNKS]]
            bad[np.searchsorted(string_ends, too_long, side='right')] = True
            return areas, totals, bad
        which = np.searchsorted(multi, owner)
        shift = 5 * (continuation - (token_ends[multi] - num_more)[which])
        low_bits = np.bincount(
            which,
            weights=(chunks[continuation].astype(np.int64) & _DATA_MASK) <<
            shift,
            minlength=len(multi)).astype(np.int64)
        values[multi] = (values[multi] << (5 * num_more)) + low_bits

    # token range [first, last) of every string
    last_token = np.searchsorted(token_ends, string_ends - 1, side='right')
    first_token = np.empty_like(last_token)
    first_token[0] = 0
    first_token[1:] = last_token[:-1]
    runs = _undo_delta_coding(values, first_token, last_token)

    if runs.min() < 0 or runs.max() > _MAX_RUN:
        bad = ((np.minimum.reduceat(runs, first_token) < 0)
               | (np.maximum.reduceat(runs, first_token) > _MAX_RUN))
        return areas, totals, bad
    totals = np.add.reduceat(runs, first_token)
    # foreground runs are the odd positions inside each string
    even_sums = _exclusive_cumsum(runs[0::2])
    odd_sums = _exclusive_cumsum(runs[1::2])
    on_even = (even_sums[(last_token + 1) // 2] -
               even_sums[(first_token + 1) // 2])
    on_odd = odd_sums[last_token // 2] - odd_sums[first_token // 2]
    areas = np.where(first_token % 2 == 0, on_odd, on_even)
    return areas, totals, bad


def _exclusive_cumsum(values: np.ndarray) -> np.ndarray:
    """(n + 1,) sums of the first 0..n entries."""
    out = np.empty(len(values) + 1, np.int64)
    out[0] = 0
    np.cumsum(values, out=out[1:])
    return out


def _undo_delta_coding(values: np.ndarray, first_token: np.ndarray,
                       last_token: np.ndarray) -> np.ndarray:
    """Turn stored values into run lengths.

    ``run[j] = value[j] + run[j - 2]`` for ``j > 2`` inside a string, so every
    run is a running sum over the values of the same parity of its string,
    where the even chain starts at index 2 (index 0 stands alone). Positions
    of the same parity inside a string have the same parity in the
    concatenated token array, so two global cumulative sums, minus the sum
    accumulated before each string, give all runs at once.
    """
    runs_per_string = last_token - first_token
    first_values = values[first_token]
    values[first_token] = 0
    even_sums = _exclusive_cumsum(values[0::2])
    odd_sums = _exclusive_cumsum(values[1::2])
    runs = np.empty_like(values)
    runs[0::2] = even_sums[1:]
    runs[1::2] = odd_sums[1:]
    runs[0::2] -= np.repeat(even_sums[(first_token + 1) // 2],
                            runs_per_string)[0::2]
    runs[1::2] -= np.repeat(odd_sums[first_token // 2],
                            runs_per_string)[1::2]
    runs[first_token] = first_values
    return runs


def describe_bad_counts(counts: Union[str, bytes], height: int,
                        width: int) -> str:
    """Say in words why one compressed counts string is not valid."""
    if not isinstance(counts, (str, bytes)):
        return f'"counts" must be a string, got {type(counts).__name__}'
    _, totals, bad = compressed_counts_stats([counts])
    if len(counts) == 0:
        return 'empty "counts" string'
    if bad[0]:
        return ('"counts" is not a valid compressed RLE string '
                '(foreign character, truncated or out-of-range run)')
    return (f'its runs cover {totals[0]} pixels but the video frame is '
            f'{height}x{width} = {height * width} pixels')


def normalize_rle(segmentation: Union[dict, list], height: int,
                  width: int) -> dict:
    """Turn one frame's polygon / uncompressed RLE into a compressed RLE.

    A compressed RLE is returned unchanged (its counts are checked by the
    caller in batch with :func:`compressed_counts_stats`). Polygons are
    rasterised and merged with pycocotools exactly as the official YouTube-VIS
    API (``annToRLE``) does.

    Args:
        segmentation (dict | list): compressed RLE ``{'size', 'counts'}``,
            uncompressed RLE (``counts`` a list of ints) or a list of polygons.
        height (int): frame height of the video.
        width (int): frame width of the video.

    Returns:
        dict: ``{'size': [h, w], 'counts': str | bytes}``.

    Raises:
        VISFormatError: if the segmentation cannot be interpreted.
    """
    if isinstance(segmentation, list):
        if not all(
                isinstance(p, (list, tuple)) and len(p) > 0
                and all(isinstance(v, (int, float)) for v in p)
                for p in segmentation):
            raise VISFormatError(
                'a polygon segmentation must be a list of [x1, y1, x2, y2, '
                '...] coordinate lists')
        for index, polygon in enumerate(segmentation):
            # pycocotools reads a 4-number list as a box, and an odd count
            # silently drops the last number
            if len(polygon) % 2 or len(polygon) < 6:
                raise VISFormatError(
                    f'polygon {index} has {len(polygon)} numbers; a polygon '
                    'needs an even count of at least 6 (3 or more x, y '
                    'points)')
            if not all(math.isfinite(v) for v in polygon):
                raise VISFormatError(
                    f'polygon {index} holds a NaN or infinite coordinate')
        try:
            # same rasterisation as the official API's annToRLE
            rles = mask_utils.frPyObjects(
                [list(p) for p in segmentation], height, width)
            return mask_utils.merge(rles)
        except (TypeError, ValueError, IndexError) as err:
            raise VISFormatError(f'bad polygon: {err}') from err
    if not isinstance(segmentation, dict):
        raise VISFormatError(
            'a segmentation must be an RLE dict, a polygon list or null, '
            f'got {type(segmentation).__name__}')
    if 'counts' not in segmentation or 'size' not in segmentation:
        raise VISFormatError('an RLE needs both "size" and "counts"')
    size = segmentation['size']
    if not (isinstance(size, (list, tuple)) and len(size) == 2 and all(
            isinstance(s, numbers.Integral) and not isinstance(s, bool)
            for s in size)):
        raise VISFormatError(
            f'RLE "size" must be [height, width] as two integers, got '
            f'{size!r}')
    if [int(s) for s in size] != [height, width]:
        raise VISFormatError(f'mask size {size} differs from the video size '
                             f'[{height}, {width}]')
    counts = segmentation['counts']
    if isinstance(counts, (list, tuple)):
        runs = np.asarray(counts)
        if (runs.ndim != 1 or not np.issubdtype(runs.dtype, np.integer)
                or (runs < 0).any()):
            raise VISFormatError(
                'uncompressed RLE counts must be non-negative integers')
        if int(runs.sum()) != height * width:
            raise VISFormatError(
                f'uncompressed RLE runs cover {int(runs.sum())} pixels but '
                f'the video frame is {height}x{width} = '
                f'{height * width} pixels')
        return mask_utils.frPyObjects(
            {'size': [height, width], 'counts': [int(r) for r in runs]},
            height, width)
    if not isinstance(counts, (str, bytes)):
        raise VISFormatError(
            '"counts" must be a compressed string or a list of ints, got '
            f'{type(counts).__name__}')
    return segmentation
