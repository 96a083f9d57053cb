# Copyright (c) OpenMMLab. All rights reserved.
import json
import zipfile

import pytest

from mdqe_mm.evaluation.functional import evaluate_vis


@pytest.fixture(scope='module')
def eval_vis(load_tool):
    return load_tool('tools/analysis_tools/eval_vis.py')


def test_cli_prints_and_writes_flat_json(eval_vis, vis_builders, tmp_path,
                                         capsys):
    gt, results = vis_builders['random_vis_dataset'](
        4, height=60, width=80, occlusion=True)
    ann, res, out = (tmp_path / 'ann.json', tmp_path / 'res.json',
                     tmp_path / 'metrics.json')
    ann.write_text(json.dumps(gt))
    res.write_text(json.dumps(results))
    assert eval_vis.main([str(ann), str(res), '--out', str(out)]) == 0
    printed = capsys.readouterr().out
    assert '| AP ' in printed and 'cat1' in printed
    written = json.loads(out.read_text())
    expected = evaluate_vis(gt, results).to_dict()
    assert written == pytest.approx(expected, abs=1e-12)
    assert {
        'AP', 'AP50', 'AP75', 'APs', 'APm', 'APl', 'AR1', 'AR10', 'AR100',
        'APso', 'APmo', 'APho', 'AP_cat1'
    } <= set(written)

    # a CodaLab submission zip is read as well
    archive = tmp_path / 'submission.zip'
    with zipfile.ZipFile(archive, 'w') as zf:
        zf.write(res, 'results.json')
    assert eval_vis.main([str(ann), str(archive), '--out', str(out)]) == 0
    assert json.loads(out.read_text()) == written


def test_cli_reports_bad_input(eval_vis, vis_builders, tmp_path, capsys):
    gt, results = vis_builders['random_vis_dataset'](4, height=60, width=80)
    ann, res = tmp_path / 'ann.json', tmp_path / 'res.json'
    ann.write_text(json.dumps(gt))
    results[0]['video_id'] = 4242
    res.write_text(json.dumps(results))
    assert eval_vis.main([str(ann), str(res)]) == 2
    err = capsys.readouterr().err
    assert 'result #0 (video_id=4242' in err and str(res) in err

    res.write_text('[]')  # empty results are valid: AP 0
    out = tmp_path / 'm.json'
    assert eval_vis.main([str(ann), str(res), '--out', str(out)]) == 0
    assert json.loads(out.read_text())['AP'] == 0.0

    ann.write_text(json.dumps(dict(gt, annotations=None)))
    assert eval_vis.main([str(ann), str(res)]) == 2
    assert 'hidden' in capsys.readouterr().err
