# Copyright (c) OpenMMLab. All rights reserved.
"""Train and evaluate named variants of one config over several seeds.

Every (variant, seed) run is ``tools/train.py`` on the config with the
variant's overrides and ``randomness.seed`` set (written to
``WORK_DIR/<variant>/seed<seed>/request/config.py``), in its own folder
``WORK_DIR/<variant>/seed<seed>/``. The metrics of the validation at the
last iteration are collected into a table of mean ± std (sample standard
deviation over the seeds) with the mean wall time of a run::

    python tools/analysis_tools/ablate.py \\
        configs/quickstart/mdqe_tiny_1xb2-4k_synthetic.py \\
        --variants full no-repulsion no-grid-init --seeds 0 1 2 \\
        --work-dir work_dirs/ablation --jobs 2

Built-in variants of MDQE configs (``--list`` prints them):

* ``full``: the config as it is;
* ``no-repulsion``: plain BCE + dice instead of the repulsion loss;
* ``no-grid-init``: learned queries (Deformable DETR / SeqFormer) instead of
  grid-guided selection and association (``LearnedQuerySelection``);
* ``no-association``: grid-guided queries, but frame t's query k is the one
  of grid cell k (association window 0);
* ``t1``: one-frame clips for training and inference, linked by the tracker.

Your own variants take ``--cfg-options``-style overrides::

    --variant lr2x optim_wrapper.optimizer.lr=1e-3 --variant ...

A run whose ``result.json`` exists is reused (the table can be rebuilt,
and an interrupted ablation resumed, for free) as long as its requested
config is the one this call would run; ``--force`` runs it again.
The table goes to stdout, ``WORK_DIR/ablation.md`` and
``WORK_DIR/ablation.json``.
"""
import argparse
import copy
import glob
import json
import math
import os
import os.path as osp
import subprocess
import sys
import time
from typing import Dict, List, Sequence

from mmengine.config import Config, DictAction

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TRAIN_SCRIPT = osp.join(REPO_ROOT, 'tools', 'train.py')
DEFAULT_METRICS = ('AP', 'AP50', 'AP75', 'APso', 'APmo', 'APho')


class AblationError(Exception):
    """A variant cannot be applied, or a run gave no result."""


def _query_selection(cfg: Config, variant: str) -> dict:
    selection = cfg.get('model', {}).get('query_selection')
    if not isinstance(selection, dict) or \
            selection.get('type') != 'GridQuerySelection':
        raise AblationError(
            f'variant {variant!r} changes an MDQE model\'s '
            'GridQuerySelection (model.query_selection), which this config '
            'does not have; define your own with --variant NAME KEY=VALUE')
    return selection


def _no_repulsion(cfg: Config) -> dict:
    loss = cfg.get('model', {}).get('track_head', {}).get('loss_mask')
    if not isinstance(loss, dict) or \
            loss.get('type') != 'InterInstanceMaskRepulsionLoss':
        raise AblationError(
            "variant 'no-repulsion' switches off "
            'InterInstanceMaskRepulsionLoss in model.track_head.loss_mask, '
            'which this config does not use')
    return {'model.track_head.loss_mask.repulsion': False}


def _no_grid_init(cfg: Config) -> dict:
    selection = _query_selection(cfg, 'no-grid-init')
    learned = dict(
        _delete_=True,
        type='LearnedQuerySelection',
        num_classes=selection['num_classes'],
        num_queries=selection.get('num_queries', 196))
    if 'embed_dims' in selection:
        learned['embed_dims'] = selection['embed_dims']
    return {'model.query_selection': learned}


def _no_association(cfg: Config) -> dict:
    _query_selection(cfg, 'no-association')
    return {
        'model.query_selection.train_window': 0,
        'model.query_selection.test_window': 0
    }


def _clip_samplers(node, path: str = '') -> List[str]:
    """Dotted paths of every ``ClipFrameSample`` transform under ``node``."""
    found = []
    if isinstance(node, dict):
        if node.get('type') == 'ClipFrameSample':
            found.append(path)
        for key, value in node.items():
            found += _clip_samplers(value, f'{path}.{key}' if path else key)
    elif isinstance(node, (list, tuple)):
        for index, value in enumerate(node):
            found += _clip_samplers(value, f'{path}.{index}')
    return found


def _one_frame_clips(cfg: Config) -> dict:
    if 'num_frames' not in cfg.get('model', {}):
        raise AblationError("variant 't1' sets model.num_frames, which this "
                            'config does not have')
    samplers = _clip_samplers(
        cfg.get('train_dataloader', {}), 'train_dataloader')
    if not samplers:
        raise AblationError("variant 't1' needs a ClipFrameSample in the "
                            'training pipeline to draw one-frame clips')
    options = {'model.num_frames': 1, 'model.test_cfg.clip_length': 1}
    options.update({f'{path}.num_frames': 1 for path in samplers})
    return options


#: name -> (description, function of the config giving its overrides)
BUILTIN_VARIANTS: Dict[str, tuple] = {
    'full': ('the config as it is', lambda cfg: {}),
    'no-repulsion': ('plain BCE + dice mask loss (no inter-instance '
                     'repulsion)', _no_repulsion),
    'no-grid-init': ('learned queries instead of grid-guided selection + '
                     'association', _no_grid_init),
    'no-association': ('grid-guided queries without inter-frame '
                       'association (window 0)', _no_association),
    't1': ('one-frame clips, linked by the tracker', _one_frame_clips),
}


def parse_overrides(items: Sequence[str]) -> dict:
    """``KEY=VALUE`` strings parsed as ``--cfg-options`` parses them."""
    parser = argparse.ArgumentParser(prog='overrides', add_help=False)
    parser.add_argument('opts', nargs='*', action=DictAction, default={})
    bad = [item for item in items if '=' not in item]
    if bad:
        raise AblationError(f'overrides must look like KEY=VALUE, got {bad}')
    return dict(parser.parse_args(list(items)).opts)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Train named variants of a config over several seeds '
        'and print mean ± std of the validation metrics.')
    parser.add_argument('config', nargs='?', help='config file')
    parser.add_argument(
        '--variants',
        nargs='+',
        default=['full', 'no-repulsion', 'no-grid-init'],
        help='built-in or --variant names, in table order (default: full '
        'no-repulsion no-grid-init)')
    parser.add_argument(
        '--variant',
        nargs='+',
        action='append',
        default=[],
        metavar=('NAME', 'KEY=VALUE'),
        help='define a variant by --cfg-options-style overrides; it is run '
        'when NAME is in --variants (added at the end if it is not)')
    parser.add_argument(
        '--seeds', type=int, nargs='+', default=[0, 1, 2], help='seeds')
    parser.add_argument(
        '--work-dir',
        help='root of the runs (default work_dirs/ablation_<config name>)')
    parser.add_argument(
        '--jobs',
        type=int,
        default=1,
        help='runs at a time; each gets --threads CPU threads')
    parser.add_argument(
        '--threads',
        type=int,
        default=None,
        help='OMP threads per run (default: CPU count / --jobs)')
    parser.add_argument(
        '--metrics',
        nargs='+',
        default=list(DEFAULT_METRICS),
        help='metric names (without the evaluator prefix) in the table')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        default={},
        help='overrides for every variant, as in tools/train.py')
    parser.add_argument(
        '--force', action='store_true', help='rerun finished runs')
    parser.add_argument(
        '--dry-run',
        action='store_true',
        help='print each variant\'s overrides and exit')
    parser.add_argument(
        '--list', action='store_true', help='list built-in variants')
    args = parser.parse_args(argv)
    if not args.list and args.config is None:
        parser.error('the config is required')
    if args.jobs < 1 or (args.threads is not None and args.threads < 1):
        parser.error('--jobs and --threads must be >= 1')
    if len(set(args.seeds)) != len(args.seeds):
        parser.error(f'--seeds has repeats: {args.seeds}')
    return args


def variant_overrides(cfg: Config, names: Sequence[str],
                      custom: Dict[str, dict]) -> Dict[str, dict]:
    """The overrides of each named variant, checked against ``cfg``."""
    overrides = {}
    for name in names:
        if name in custom:
            overrides[name] = custom[name]
        elif name in BUILTIN_VARIANTS:
            overrides[name] = BUILTIN_VARIANTS[name][1](cfg)
        else:
            raise AblationError(
                f'unknown variant {name!r}: not built in '
                f'({", ".join(BUILTIN_VARIANTS)}) and not defined by '
                '--variant NAME KEY=VALUE')
    return overrides


def build_run_config(config: str, common: dict, overrides: dict,
                     seed: int) -> Config:
    """The config of one run: file, then common, then variant overrides,
    then the seed."""
    cfg = Config.fromfile(config)
    # merging pops '_delete_' from the dicts it is given: pass copies
    if common:
        cfg.merge_from_dict(copy.deepcopy(common))
    if overrides:
        cfg.merge_from_dict(copy.deepcopy(overrides))
    randomness = dict(cfg.get('randomness') or {})
    randomness['seed'] = seed
    cfg.randomness = randomness
    return cfg


def read_final_metrics(run_dir: str) -> dict:
    """Metrics of the last validation of a finished run (mmengine's
    ``<timestamp>/vis_data/scalars.json``), keyed without their prefix."""
    records = []
    for path in sorted(
            glob.glob(osp.join(run_dir, '*', 'vis_data', 'scalars.json'))):
        with open(path) as f:
            records += [json.loads(line) for line in f if line.strip()]
    evals = [r for r in records if any(k.endswith('/AP') for k in r)]
    if not evals:
        raise AblationError(f'no validation metrics under {run_dir}; does '
                            'the config validate at its last iteration?')
    last = evals[-1]
    if records[-1] is not last:
        # training went on after its last validation (e.g. val_interval
        # beyond max_iters with a custom loop): no metrics of the end model
        raise AblationError(f'the run under {run_dir} trained after its last '
                            'validation; validate at the last iteration')
    return {
        key.split('/', 1)[1]: float(value)
        for key, value in last.items() if '/' in key
    }


def mean_std(values: Sequence[float]) -> tuple:
    """Mean and sample standard deviation (ddof=1; 0 for one value)."""
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, 0.0
    var = sum((v - mean)**2 for v in values) / (len(values) - 1)
    return mean, math.sqrt(var)


def summarise(results: Dict[str, Dict[int, dict]], names: Sequence[str],
              metrics: Sequence[str]) -> List[dict]:
    """One row per variant: mean/std of each metric (in %) and wall time."""
    rows = []
    for name in names:
        runs = [results[name][seed] for seed in sorted(results[name])]
        row = dict(variant=name, seeds=sorted(results[name]))
        for metric in metrics:
            values = [
                100 * r['metrics'][metric] for r in runs
                if r['metrics'].get(metric, -1) >= 0
            ]
            row[metric] = mean_std(values) if values else None
        row['wall_min'] = mean_std([r['wall_s'] / 60 for r in runs])
        rows.append(row)
    return rows


def format_table(rows: List[dict], metrics: Sequence[str]) -> str:
    """Markdown table of :func:`summarise` rows."""
    head = ['variant', 'seeds'] + list(metrics) + ['wall (min)']
    lines = ['| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
    for row in rows:
        cells = [row['variant'], str(len(row['seeds']))]
        for metric in metrics:
            value = row[metric]
            cells.append('n/a' if value is
                         None else f'{value[0]:.1f} ± {value[1]:.1f}')
        cells.append(f'{row["wall_min"][0]:.1f}')
        lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


class _Run:
    """One (variant, seed) training in a subprocess."""

    def __init__(self, variant: str, seed: int, run_dir: str, cfg: Config):
        self.variant = variant
        self.seed = seed
        self.run_dir = run_dir
        self.cfg = cfg
        self.proc = None
        self.reused = False
        self.start = None
        self.log = None

    @property
    def result_file(self) -> str:
        return osp.join(self.run_dir, 'result.json')

    @property
    def config_file(self) -> str:
        # not run_dir/config.py: the runner dumps its own version there
        return osp.join(self.run_dir, 'request', 'config.py')

    def stale_reason(self) -> str:
        """Why a finished result cannot be reused ('' if it can)."""
        if not osp.isfile(self.result_file):
            return 'no result yet'
        if not osp.isfile(self.config_file):
            return f'{self.config_file} is missing'
        with open(self.config_file) as f:
            if f.read() != self.cfg.dump():
                return 'the config it was trained with differs from this one'
        return ''

    def launch(self, threads: int) -> None:
        os.makedirs(self.run_dir, exist_ok=True)
        # a rerun must not read the previous run's metrics
        for old in glob.glob(
                osp.join(self.run_dir, '*', 'vis_data', 'scalars.json')):
            os.remove(old)
        config_file = self.config_file
        os.makedirs(osp.dirname(config_file), exist_ok=True)
        self.cfg.dump(config_file)
        env = dict(os.environ)
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
        self.log = open(osp.join(self.run_dir, 'train.log'), 'w')
        self.start = time.time()
        self.proc = subprocess.Popen([
            sys.executable, TRAIN_SCRIPT, config_file, '--work-dir',
            self.run_dir
        ],
                                     cwd=os.getcwd(),
                                     env=env,
                                     stdout=self.log,
                                     stderr=subprocess.STDOUT)

    def finish(self) -> dict:
        wall = time.time() - self.start
        self.log.close()
        if self.proc.returncode != 0:
            raise AblationError(
                f'{self.variant} seed {self.seed} failed (exit '
                f'{self.proc.returncode}); see '
                f'{osp.join(self.run_dir, "train.log")}')
        result = dict(
            variant=self.variant,
            seed=self.seed,
            wall_s=wall,
            metrics=read_final_metrics(self.run_dir))
        with open(self.result_file, 'w') as f:
            json.dump(result, f, indent=1)
        return result


def run_all(runs: List[_Run],
            jobs: int,
            threads: int,
            force: bool = False) -> tuple:
    """Run what has no up-to-date result yet, ``jobs`` at a time.

    A finished run is reused unless ``force`` is set or its dumped config
    differs from the one this call would run (the config file, the common
    overrides or the variant changed).

    Returns:
        tuple[dict, list[str]]: results[variant][seed] and the errors.
    """
    results, errors = {}, []
    todo = []
    for run in runs:
        results.setdefault(run.variant, {})
        stale = run.stale_reason()
        if force or stale:
            if stale and osp.isfile(run.result_file):
                print(f'rerun {run.variant} seed {run.seed}: {stale}')
            if osp.isfile(run.result_file):
                os.remove(run.result_file)
            todo.append(run)
        else:
            run.reused = True
            with open(run.result_file) as f:
                results[run.variant][run.seed] = json.load(f)
            print(f'reuse {run.variant} seed {run.seed}: {run.result_file}')
    running: List[_Run] = []
    done = 0
    total = len(todo)
    while todo or running:
        while todo and len(running) < jobs:
            run = todo.pop(0)
            run.launch(threads)
            running.append(run)
            print(f'start {run.variant} seed {run.seed} -> {run.run_dir} '
                  f'({threads} threads)')
            sys.stdout.flush()
        time.sleep(1)
        for run in [r for r in running if r.proc.poll() is not None]:
            running.remove(run)
            done += 1
            try:
                result = run.finish()
            except AblationError as err:
                errors.append(str(err))
                print(f'[{done}/{total}] {err}')
                continue
            results[run.variant][run.seed] = result
            ap = result['metrics'].get('AP', float('nan'))
            print(f'[{done}/{total}] {run.variant} seed {run.seed}: AP '
                  f'{100 * ap:.1f} in {result["wall_s"] / 60:.1f} min')
            sys.stdout.flush()
    return results, errors


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.list:
        for name, (description, _) in BUILTIN_VARIANTS.items():
            print(f'{name:16s} {description}')
        return 0
    if not osp.isfile(args.config):
        sys.exit(f'ablate.py: config file not found: {args.config}')
    custom = {}
    try:
        for item in args.variant:
            name, overrides = item[0], item[1:]
            if name in BUILTIN_VARIANTS:
                raise AblationError(f'--variant {name}: built-in name; pick '
                                    'another')
            if not overrides:
                raise AblationError(f'--variant {name} has no KEY=VALUE')
            custom[name] = parse_overrides(overrides)
        names = list(dict.fromkeys(list(args.variants) + list(custom)))
        base = Config.fromfile(args.config)
        if args.cfg_options:
            base.merge_from_dict(args.cfg_options)
        overrides = variant_overrides(base, names, custom)
    except AblationError as err:
        sys.exit(f'ablate.py: {err}')
    if args.dry_run:
        for name in names:
            print(f'{name}: {overrides[name]}')
        return 0

    work_dir = args.work_dir or osp.join(
        'work_dirs', 'ablation_' + osp.splitext(osp.basename(args.config))[0])
    runs = []
    for name in names:
        for seed in args.seeds:
            cfg = build_run_config(args.config, args.cfg_options,
                                   overrides[name], seed)
            runs.append(
                _Run(name, seed, osp.join(work_dir, name, f'seed{seed}'), cfg))
    threads = args.threads or max(1, (os.cpu_count() or 1) // args.jobs)
    start = time.time()
    inputs = {osp.abspath(args.config)}
    clash = [
        r.config_file for r in runs if osp.abspath(r.config_file) in inputs
    ]
    if clash:
        sys.exit(f'ablate.py: --work-dir {work_dir} would overwrite the input '
                 f'config {clash[0]}; choose another --work-dir')
    results, errors = run_all(runs, args.jobs, threads, args.force)
    complete = [n for n in names if results.get(n)]
    if complete:
        rows = summarise(results, complete, args.metrics)
        table = format_table(rows, args.metrics)
        ran = sum(1 for run in runs if not run.reused)
        how = (f'this call trained {ran} run(s), {args.jobs} at a time with '
               f'{threads} thread(s) each, and reused {len(runs) - ran}'
               if ran else 'every run reused from an earlier call')
        header = (f'{args.config}, seeds {args.seeds}; {how}; metrics in %, '
                  'mean ± sample std over seeds; wall time per run.')
        print()
        print(header)
        print(table)
        os.makedirs(work_dir, exist_ok=True)
        with open(osp.join(work_dir, 'ablation.md'), 'w') as f:
            f.write(header + '\n\n' + table + '\n')
        with open(osp.join(work_dir, 'ablation.json'), 'w') as f:
            json.dump(
                dict(
                    config=args.config,
                    seeds=args.seeds,
                    overrides={n: overrides[n]
                               for n in complete},
                    rows=rows,
                    runs=results),
                f,
                indent=1)
    print(f'total wall time {(time.time() - start) / 60:.1f} min')
    if errors:
        print('failed runs:\n  ' + '\n  '.join(errors), file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
