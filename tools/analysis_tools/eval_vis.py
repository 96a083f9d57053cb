# Copyright (c) OpenMMLab. All rights reserved.
"""Evaluate YouTube-VIS / OVIS results offline.

Example::

    python tools/analysis_tools/eval_vis.py \\
        data/ovis/annotations/valid_sub.json work_dirs/results.json \\
        --out work_dirs/metrics.json

RESULTS_JSON is the official results format, a list of
``{video_id, category_id, score, segmentations: [RLE | null per frame]}``
(the ``results.json`` inside a CodaLab submission zip; a .zip is read too).
"""
import argparse
import json
import sys
import time
import zipfile

from mdqe_mm.evaluation.functional import (VISEval, VISFormatError,
                                           load_vis_ground_truth,
                                           load_vis_results)
from mdqe_mm.utils import atomic_write, check_output_not_input, check_writable


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='YouTube-VIS AP/AR (and OVIS occlusion AP) of a results '
        'file against an annotation file')
    parser.add_argument('annotation', help='YouTube-VIS / OVIS annotation '
                        'JSON with ground truth')
    parser.add_argument(
        'results', help='results JSON in the official format, or a '
        'submission zip holding results.json')
    parser.add_argument(
        '--out', help='write the metrics as a flat JSON object here')
    return parser.parse_args(argv)


def _read_results(path: str):
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            names = [n for n in zf.namelist() if n.endswith('.json')]
            if len(names) != 1:
                raise VISFormatError(
                    f'{path}: a submission zip must hold exactly one JSON '
                    f'file, found {names}')
            try:
                return json.loads(zf.read(names[0]))
            except (json.JSONDecodeError, UnicodeDecodeError) as err:
                raise VISFormatError(
                    f'{path}: {names[0]} in the zip is not valid JSON: '
                    f'{err}') from None
    return path  # read by load_vis_results, which names it in errors


def main(argv=None) -> int:
    args = parse_args(argv)
    start = time.time()
    if args.out:
        # before the evaluation, which can take minutes
        try:
            check_output_not_input(args.out, [args.annotation, args.results],
                                   'eval_vis.py')
            check_writable(args.out, 'eval_vis.py')
        except (ValueError, OSError) as err:
            print(f'error: {err}', file=sys.stderr)
            return 2
    try:
        gt = load_vis_ground_truth(args.annotation)
        if not gt.has_annotations:
            print(
                f'error: {args.annotation} has "annotations": null (hidden '
                'ground truth); submit the results to the evaluation '
                'server instead',
                file=sys.stderr)
            return 2
        predictions = load_vis_results(_read_results(args.results), gt)
    except (VISFormatError, OSError, json.JSONDecodeError) as err:
        print(f'error: {err}', file=sys.stderr)
        return 2
    if not predictions:
        print(
            f'warning: {args.results} holds no prediction for the videos of '
            f'{args.annotation}: every AP below is 0',
            file=sys.stderr)
    result = VISEval(gt).evaluate(predictions)
    print(result.summary_table())
    print(result.per_category_table())
    print(f'evaluated {len(gt.videos)} videos, '
          f'{sum(len(p) for p in predictions.values())} predicted tracks '
          f'in {time.time() - start:.1f} s')
    if args.out:
        with atomic_write(args.out) as f:
            json.dump(result.to_dict(), f, indent=2)
        print(f'metrics written to {args.out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
