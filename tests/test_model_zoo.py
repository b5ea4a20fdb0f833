"""The model zoo: configs/<family>/metafile.yml (mmdet's metafile format) and tools/analysis/model_zoo.py.

Every config is in exactly one metafile, every metafile entry is complete and points at real files, the counts in
the metafiles are those of the configs' models now, the accuracy figures come from the READMEs or their stated
sources, and the tool writes the page and the plot, rewrites only the FLOPs/Parameters lines and stops on bad input
with one ``error:`` line."""
import glob
import json
import os
import os.path as osp
import stat
import subprocess
import sys

import pytest
import yaml
from mmengine.config import Config

from conftest import REPO, load_tool

TOOL = osp.join(REPO, 'tools', 'analysis', 'model_zoo.py')
FAMILIES = ('compconv', 'dcd', 'demo', 'igcv1', 'micronet', 'mobilenet_v1', 'shufflenet_v1', 'squeezenet', 'swap',
            'xception')
#: A cheap model whose counts are recomputed in the default run (the slow test recomputes all; the classification demo
#: is recomputed by the update test, MicroNet-M3's ImageNet classifier by the get_flops test).
CHEAP = ('configs/demo/retinanet_micronet-m3_demo.py', )


@pytest.fixture(scope='module')
def zoo_tool():
    return load_tool('analysis', 'model_zoo.py')


def _metafiles():
    return sorted(glob.glob(osp.join(REPO, 'configs', '*', 'metafile.yml')))


def _load(path):
    with open(path, encoding='utf-8') as f:
        return yaml.safe_load(f)


@pytest.fixture(scope='module')
def metafiles():
    return {osp.relpath(path, REPO): _load(path) for path in _metafiles()}


@pytest.fixture(scope='module')
def models(metafiles):
    return [(path, model) for path, data in metafiles.items() for model in data['Models']]


def _expected_configs():
    """configs/**/*.py without the _base_ folders and the mmpretrain idiom (it needs mmpretrain)."""
    out = set()
    for path in glob.glob(osp.join(REPO, 'configs', '**', '*.py'), recursive=True):
        rel = osp.relpath(path, REPO).replace(os.sep, '/')
        if '_base_' in rel.split('/') or rel.startswith('configs/imagenet/mmpretrain/'):
            continue
        out.add(rel)
    return out


def test_every_family_folder_has_a_metafile():
    folders = {d for d in os.listdir(osp.join(REPO, 'configs')) if osp.isdir(osp.join(REPO, 'configs', d))}
    assert folders - {'imagenet'} == set(FAMILIES)
    assert {osp.basename(osp.dirname(p)) for p in _metafiles()} == set(FAMILIES)


def test_every_config_is_in_exactly_one_metafile(models):
    listed = {}
    for path, model in models:
        listed.setdefault(model['Config'], []).append(path)
    expected = _expected_configs()
    assert len(expected) > 40
    missing = sorted(expected - set(listed))
    twice = {config: paths for config, paths in listed.items() if len(paths) > 1}
    assert not missing, f'configs in no metafile: {missing}'
    assert not twice, f'configs in more than one metafile entry: {twice}'
    assert set(listed) <= expected, f'metafile configs that are not zoo configs: {sorted(set(listed) - expected)}'


def test_imagenet_configs_are_in_their_method_family(models):
    family_of = {model['Config']: osp.basename(osp.dirname(path)) for path, model in models}
    assert family_of['configs/imagenet/micronet-m3_in1k.py'] == 'micronet'
    assert family_of['configs/imagenet/dcd-r50_in1k.py'] == 'dcd'
    assert family_of['configs/imagenet/r50-igc_in1k.py'] == 'igcv1'
    assert family_of['configs/retinanet_compconv128_coco.py'] == 'compconv'
    assert family_of['configs/faster-rcnn_compconv128_coco.py'] == 'compconv'
    for config, family in family_of.items():
        if config.startswith('configs/') and config.count('/') == 2 and not config.startswith('configs/imagenet/'):
            assert config.split('/')[1] == family, config


def test_metafile_entries_are_complete(metafiles):
    names = {}
    for path, data in metafiles.items():
        assert set(data) == {'Collections', 'Models'}, path
        collections = {c['Name']: c for c in data['Collections']}
        assert collections, path
        for name, collection in collections.items():
            assert osp.isfile(osp.join(REPO, collection['README'])), (path, name)
            if 'Paper' in collection:
                assert collection['Paper']['Title'] and collection['Paper']['URL'].startswith('https://'), name
        used = set()
        for model in data['Models']:
            for key in ('Name', 'In Collection', 'Config', 'Metadata'):
                assert key in model, (path, model.get('Name'), key)
            where = (path, model['Name'])
            assert model['Name'] not in names, f'{model["Name"]} in {path} and {names[model["Name"]]}'
            names[model['Name']] = path
            assert model['Name'] == osp.splitext(osp.basename(model['Config']))[0], where
            assert model['In Collection'] in collections, where
            used.add(model['In Collection'])
            assert osp.isfile(osp.join(REPO, model['Config'])), where
            meta = model['Metadata']
            for key in ('FLOPs', 'Parameters'):
                assert isinstance(meta[key], int) and not isinstance(meta[key], bool) and meta[key] > 0, (where, key)
            size = meta['Input Size']
            assert isinstance(size, list) and len(size) == 2 and all(isinstance(v, int) and v > 0 for v in size)
            assert isinstance(meta['Epochs'], int) and meta['Epochs'] > 0, where
            assert model.get('Weights'), where
            for result in model.get('Results', []):
                assert result.get('Source'), where
                assert result.get('Task') and result.get('Dataset') and result.get('Metrics'), where
        assert used == set(collections), f'{path}: collections without a model'


def _number_texts(value):
    """How a percentage can be written in a source: as is, as an error (100 - value), as a fraction."""
    return {f'{value:g}', f'{value:.1f}', f'{value:.2f}', f'{100 - value:.2f}', f'{100 - value:.1f}',
            f'{value / 100:.3f}'}


def test_results_come_from_the_readmes_or_their_stated_source(metafiles):
    """No figure without a written source: every metric value is in the family's README, the ImageNet README or the
    demo README (possibly as an error rate or a fraction), or in the Source line itself."""
    readme = {}
    for extra in ('configs/imagenet/README.md', 'configs/demo/README.md'):
        with open(osp.join(REPO, extra), encoding='utf-8') as f:
            readme[extra] = f.read()
    checked = 0
    for path, data in metafiles.items():
        collections = {c['Name']: c for c in data['Collections']}
        for model in data['Models']:
            with open(osp.join(REPO, collections[model['In Collection']]['README']), encoding='utf-8') as f:
                text = f.read() + ''.join(readme.values())
            for result in model.get('Results', []):
                for metric, value in result['Metrics'].items():
                    assert isinstance(value, (int, float)), (model['Name'], metric)
                    texts = _number_texts(float(value))
                    assert any(t in text or t in result['Source'] for t in texts), (model['Name'], metric, value)
                    checked += 1
                if model['Config'].startswith('configs/demo/'):
                    assert result['Source'].startswith('measured with mmlight on the generated demo data')
                    assert result['Dataset'] == 'mmlight demo shapes'
                else:
                    assert result['Source'].startswith(('paper', 'official README')), model['Name']
    assert checked >= 20


def _test_input_size(cfg):
    """(H, W) of the test pipeline: the centre crop of a classifier, the resize scale of a detector."""
    dataset = cfg.test_dataloader.dataset
    while 'pipeline' not in dataset:
        dataset = dataset.dataset
    for step in reversed(dataset.pipeline):
        if step['type'] == 'CenterCrop':
            crop = step['crop_size']
            return [crop, crop] if isinstance(crop, int) else [crop[1], crop[0]]
        if step['type'] == 'Resize':
            w, h = step['scale']
            return [min(w, h), max(w, h)] if step.get('keep_ratio') else [h, w]
    raise AssertionError('no CenterCrop or Resize in the test pipeline')


def _epochs(cfg):
    dataset = cfg.train_dataloader.dataset
    times = dataset.get('times', 1) if dataset.get('type') == 'RepeatDataset' else 1
    return cfg.train_cfg.max_epochs * times


def test_input_size_and_epochs_are_the_configs(models):
    for path, model in models:
        cfg = Config.fromfile(osp.join(REPO, model['Config']))
        size = _test_input_size(cfg)
        divisor = cfg.model.get('data_preprocessor', {}).get('pad_size_divisor', 1)
        padded = [-(-v // divisor) * divisor for v in size]  # the batch shape the network sees
        assert model['Metadata']['Input Size'] in (size, padded), model['Name']
        assert model['Metadata']['Epochs'] == _epochs(cfg), model['Name']


@pytest.mark.parametrize('config', CHEAP)
def test_metafile_counts_are_current(zoo_tool, models, config):
    """The FLOPs and Parameters in the metafile are what the tool counts for the config now."""
    model = next(m for _, m in models if m['Config'] == config)
    size = model['Metadata']['Input Size']
    params, macs = zoo_tool.model_cost(config, size)
    assert (model['Metadata']['Parameters'], model['Metadata']['FLOPs']) == (params, macs), (
        f'{config}: stale counts, run python tools/analysis/model_zoo.py --update-metafiles')


def test_counts_are_current_and_get_flops_counts(zoo_tool, models):
    """The tool counts as tools/analysis/get_flops.py does (whole model, BatchNorm counted, dynamic work added), and
    the metafile holds that count."""
    get_flops = load_tool('analysis', 'get_flops.py')
    config = 'configs/imagenet/micronet-m3_in1k.py'
    model = next(m for _, m in models if m['Config'] == config)
    assert model['Metadata']['Input Size'] == [224, 224]
    cfg = get_flops.load_config(osp.join(REPO, config))
    report = get_flops.count(cfg, config, (224, 224), backbone_only=False, plain=False, norms=True)
    assert report.dynamic_macs > 0
    assert zoo_tool.model_cost(config, (224, 224)) == (report.params, report.total_macs)
    assert (model['Metadata']['Parameters'], model['Metadata']['FLOPs']) == (report.params, report.total_macs)


@pytest.mark.slow
def test_all_metafile_counts_are_current(zoo_tool, metafiles):
    stale = []
    for path, data in metafiles.items():
        for model in data['Models']:
            meta = model['Metadata']
            params, macs = zoo_tool.model_cost(model['Config'], meta['Input Size'])
            if (meta['Parameters'], meta['FLOPs']) != (params, macs):
                stale.append(f'{model["Name"]}: {meta["Parameters"]}/{meta["FLOPs"]} != {params}/{macs}')
    assert not stale, stale


# ------------------------------------------------------------------------------------------------------- the tool


def _record(configs, form, ratio, threads=1, error=None, model='M', baseline='ResNet-50', macs=1e9, kind='backbone'):
    return dict(model=model, kind=kind, configs=configs, form=form, threads=threads, size=[224, 224],
                latency_ms=1.0, baseline=baseline, latency_ratio=ratio, macs=macs, mac_ratio=0.5, params=1,
                peak_memory_bytes=1, error=error)


def _run(*args):
    return subprocess.run([sys.executable, TOOL, *args], cwd=REPO, capture_output=True, text=True, timeout=300)


def _row(page, name):
    rows = [line for line in page.splitlines() if line.startswith(f'| [{name}]')]
    assert len(rows) == 1, name
    return [cell.strip() for cell in rows[0].strip('|').split('|')]


def test_the_whole_network_record_is_the_detection_size_at_the_fewest_threads(zoo_tool):
    config = 'configs/retinanet_compconv128_coco.py'
    small, large, large_two = (dict(_record([config], 'eager', ratio, threads=t, kind='detector'), size=size)
                               for ratio, t, size in ((0.9, 1, [224, 224]), (0.8, 1, [800, 1333]),
                                                      (0.7, 2, [800, 1333])))
    for records in ([small, large, large_two], [large_two, large, small]):  # not the order of the file
        assert zoo_tool.find_record(records, config, 'eager', kind='detector') is large
    assert zoo_tool.find_record([small, large_two], config, 'eager', kind='detector') is small  # 1 thread first
    assert zoo_tool.find_record([small], config, 'eager') is None  # a backbone record is asked for


def test_page_and_plot_from_the_metafiles_and_a_benchmark_file(zoo_tool, models, tmp_path, capsys):
    micronet = ['configs/micronet/retinanet_micronet-m3_fpn_3x_coco.py', 'configs/imagenet/micronet-m3_in1k.py']
    records = [_record(micronet, 'eager', 1.4, model='MicroNet (arch=m3)', baseline='MobileNetV2 x0.35', macs=2.1e7),
               _record(micronet, 'eager', 9.9, threads=2, model='MicroNet (arch=m3)', baseline='MobileNetV2 x0.35'),
               _record(micronet, 'onnxruntime', 0.9, threads=2, model='MicroNet (arch=m3)',
                       baseline='MobileNetV2 x0.35', macs=2.1e7),
               _record(['configs/retinanet_compconv128_coco.py'], 'eager', 0.8, model='CompConv128 R50'),
               _record(['configs/retinanet_compconv128_coco.py'], 'onnxruntime', None,
                       error='export failed: an unsupported op'),
               _record(['configs/retinanet_compconv128_coco.py'], 'compiled', 0.1),
               _record(micronet[:1], 'eager', 0.5, kind='detector', model='detector', baseline='RetinaNet R50'),
               _record(micronet[:1], 'onnxruntime', 0.7, kind='detector', model='detector', baseline='RetinaNet R50',
                       threads=2),
               _record(micronet[:1], 'onnxruntime', None, kind='detector', model='detector',
                       baseline='RetinaNet R50', error='export failed: a detector op')]
    bench = tmp_path / 'bench.json'
    bench.write_text(json.dumps(dict(torch='2.13.0', device='cpu', records=records)))
    out, plot = tmp_path / 'docs' / 'zoo.md', tmp_path / 'docs' / 'zoo.png'
    assert zoo_tool.main(['--bench', str(bench), '--out', str(out), '--plot', str(plot)]) == 0
    assert 'no benchmark file' not in capsys.readouterr().out
    page = out.read_text()
    assert page.startswith('# Model zoo\n\n*Generated by `python tools/analysis/model_zoo.py`')
    assert 'do not edit by hand' in page and '![MACs against latency ratio](zoo.png)' in page
    for _, model in models:  # every config, linked, with its counts
        cells = _row(page, model['Name'])
        assert cells[0].endswith(f'{model["Config"]})')
        size = model['Metadata']['Input Size']
        assert cells[2] == f'{size[0]}x{size[1]}'
    cells = _row(page, 'micronet-m3_in1k')
    assert cells[1] == 'Image Classification'
    assert cells[5:8] == ['1.40', '0.90 (2 threads)', 'MobileNetV2 x0.35']  # 1 thread preferred, else the fewest
    assert cells[8] == '-'  # no whole-network record: a classifier
    assert cells[9] == 'ImageNet-1k Top 1 Accuracy 62.5; source: paper, Table 7 (also the official README)'
    cells = _row(page, 'retinanet_micronet-m3_fpn_3x_coco')
    assert cells[5] == '1.40'  # the backbone's, not the detector's
    assert cells[8] == '0.50 / failed (vs RetinaNet R50, 224x224)'  # the whole network: 1 thread preferred
    assert '`retinanet_micronet-m3_fpn_3x_coco`, whole network, onnxruntime: export failed: a detector op' in page
    one, two = (_record([], form, ratio, threads=t, baseline='detector B') for form, ratio, t in
                (('eager', 0.5, 1), ('onnxruntime', 0.7, 2)))
    assert zoo_tool._network_cell(one, two) == '0.50 / 0.70 (vs B, eager 224x224, onnxruntime 224x224, 2 threads)'
    cells = _row(page, 'retinanet_compconv128_coco')
    assert cells[5:8] == ['0.80', 'failed', 'ResNet-50']  # the compiled form is not a column
    assert '`retinanet_compconv128_coco`, onnxruntime: export failed: an unsupported op' in page
    assert _row(page, 'dcd-r50_in1k')[5:10] == ['-', '-', '-', '-', '-']
    params = next(m for _, m in models if m['Name'] == 'dcd-r50_in1k')['Metadata']['Parameters']
    assert _row(page, 'dcd-r50_in1k')[3] == f'{params / 1e6:.2f} M'
    assert plot.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    assert zoo_tool.plot_points(zoo_tool.load_zoo(zoo_tool.find_metafiles()), records) == {
        'eager': [(1e9, 0.8, 'CompConv128 R50', 'ResNet-50'), (2.1e7, 1.4, 'MicroNet (arch=m3)', 'MobileNetV2 x0.35')],
        'onnxruntime': [(2.1e7, 0.9, 'MicroNet (arch=m3)', 'MobileNetV2 x0.35')]}
    first = plot.read_bytes()
    assert zoo_tool.main(['--bench', str(bench), '--out', str(out), '--plot', str(plot)]) == 0
    assert plot.read_bytes() == first  # no timestamp or version in the file
    assert sorted(os.listdir(out.parent)) == ['zoo.md', 'zoo.png']  # no temporary file left


def test_page_without_a_benchmark_file(tmp_path):
    out, plot = tmp_path / 'zoo.md', tmp_path / 'zoo.png'
    result = _run('--bench', str(tmp_path / 'missing.json'), '--out', str(out), '--plot', str(plot))
    assert result.returncode == 0, result.stderr
    assert [line for line in result.stdout.splitlines() if 'no benchmark file' in line] == [
        f'no benchmark file found at {tmp_path / "missing.json"}: the latency columns show "-"']
    cells = _row(out.read_text(), 'micronet-m3_in1k')
    assert cells[5:8] == ['-', '-', '-']
    assert plot.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'


METAFILE = """\
Collections:
  - Name: Demo
    README: configs/demo/README.md  # a comment that stays

Models:
  - Name: mobilenetv1-0.5_cls_demo
    In Collection: Demo
    Config: configs/demo/mobilenetv1-0.5_cls_demo.py
    Metadata:
      Training Data: mmlight demo shapes
      FLOPs: 12   # MACs
      Parameters: 34
      Input Size: [64, 64]
      Epochs: 40
    Weights: none
  - Name: other
    In Collection: Demo
    Config: configs/demo/retinanet_micronet-m3_demo.py
    Metadata:
      Input Size: [128, 128]
      Parameters: 1
      FLOPs: 2
"""


def test_rewrite_changes_only_the_counts_of_the_given_configs(zoo_tool):
    new = zoo_tool.rewrite_costs(METAFILE, {'configs/demo/mobilenetv1-0.5_cls_demo.py': (111, 222)})
    old_lines, new_lines = METAFILE.splitlines(), new.splitlines()
    assert len(old_lines) == len(new_lines)
    changed = [(a, b) for a, b in zip(old_lines, new_lines) if a != b]
    assert changed == [('      FLOPs: 12   # MACs', '      FLOPs: 222   # MACs'),
                       ('      Parameters: 34', '      Parameters: 111')]
    both = zoo_tool.rewrite_costs(new, {'configs/demo/retinanet_micronet-m3_demo.py': (5, 6)})
    assert both.splitlines()[-2:] == ['      Parameters: 5', '      FLOPs: 6']
    # missing lines are added to the Metadata block
    short = METAFILE.replace('      FLOPs: 12   # MACs\n', '').replace('      Parameters: 34\n', '')
    added = yaml.safe_load(zoo_tool.rewrite_costs(short, {'configs/demo/mobilenetv1-0.5_cls_demo.py': (7, 8)}))
    assert added['Models'][0]['Metadata'] == {'Training Data': 'mmlight demo shapes', 'FLOPs': 8, 'Parameters': 7,
                                              'Input Size': [64, 64], 'Epochs': 40}
    flow = METAFILE.replace('    Metadata:\n      Input Size: [128, 128]\n      Parameters: 1\n      FLOPs: 2\n',
                            '    Metadata: {Input Size: [128, 128], Parameters: 1, FLOPs: 2}\n')
    with pytest.raises(zoo_tool.ToolError, match='block mapping'):
        zoo_tool.rewrite_costs(flow, {'configs/demo/retinanet_micronet-m3_demo.py': (5, 6)})


def test_update_metafiles_rewrites_the_file_in_place(zoo_tool, models, tmp_path, capsys):
    """Also checks that the classification demo's counts in its metafile are current."""
    metafile = tmp_path / 'metafile.yml'
    metafile.write_text(METAFILE.split('  - Name: other')[0])
    metafile.chmod(0o640)
    out = tmp_path / 'out'
    assert zoo_tool.main(['--update-metafiles', '--metafile', str(metafile), '--bench', str(tmp_path / 'none.json'),
                          '--out', str(out / 'zoo.md'), '--plot', str(out / 'zoo.png')]) == 0
    assert 'counted 1 models of 1 metafiles' in capsys.readouterr().out
    text = metafile.read_text()
    assert 'README: configs/demo/README.md  # a comment that stays' in text
    data = yaml.safe_load(text)['Models'][0]['Metadata']
    config = 'configs/demo/mobilenetv1-0.5_cls_demo.py'
    listed = next(m for _, m in models if m['Config'] == config)['Metadata']
    assert (data['Parameters'], data['FLOPs']) == (listed['Parameters'], listed['FLOPs']), (
        f'{config}: stale counts, run python tools/analysis/model_zoo.py --update-metafiles')
    assert f'FLOPs: {data["FLOPs"]}   # MACs' in text
    assert sorted(os.listdir(tmp_path)) == ['metafile.yml', 'out']  # no temporary file left
    assert stat.S_IMODE(metafile.stat().st_mode) == 0o640


@pytest.mark.parametrize('case', ['yaml', 'key', 'collection', 'config', 'bench-json', 'bench-format', 'argument'])
def test_bad_input_is_one_error_line(tmp_path, case):
    metafile = tmp_path / 'metafile.yml'
    bench = tmp_path / 'bench.json'
    text = METAFILE
    if case == 'yaml':
        text = METAFILE.replace('  - Name: other', '  - Name: [other')
    elif case == 'key':
        text = METAFILE.replace('      FLOPs: 12   # MACs\n', '')
    elif case == 'collection':
        text = METAFILE.replace('In Collection: Demo\n    Config: configs/demo/mobilenet', 'In Collection: Nope\n'
                                '    Config: configs/demo/mobilenet')
    elif case == 'config':
        text = METAFILE.replace('mobilenetv1-0.5_cls_demo.py', 'missing.py')
    metafile.write_text(text)
    if case == 'bench-json':
        bench.write_text('{"records": [')
    elif case == 'bench-format':
        bench.write_text(json.dumps(dict(records=[_record(['x.py'], 'jit', 1.0)])))
    args = ['--metafile', str(metafile), '--bench', str(bench), '--out', str(tmp_path / 'zoo.md'),
            '--plot', str(tmp_path / 'zoo.png')]
    if case == 'argument':
        args.append('--bogus')
    result = _run(*args)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith('error: '), result.stderr
    assert 'Traceback' not in result.stderr
    expected = {'yaml': f'metafile {metafile} line', 'key': 'has no Metadata.FLOPs', 'collection': "'Nope'",
                'config': 'missing.py', 'bench-json': f'--bench {bench}: not JSON',
                'bench-format': '"form" must be one of', 'argument': '--bogus'}[case]
    assert expected in lines[0]
    assert not (tmp_path / 'zoo.md').exists() and not (tmp_path / 'zoo.png').exists()


def test_the_tool_accepts_every_metafile_of_the_repository(zoo_tool):
    zoo = zoo_tool.load_zoo(zoo_tool.find_metafiles())
    assert sorted(m['family'] for m in zoo) == sorted(FAMILIES)
    assert sorted(zoo_tool.zoo_configs()) == sorted(_expected_configs())


def test_the_committed_page_is_current(zoo_tool):
    """docs/model_zoo.md is what the tool makes of the metafiles and the committed benchmark records now: a metafile
    or benchmark change without regenerating the page fails here."""
    page = osp.join(REPO, 'docs', 'model_zoo.md')
    bench = osp.join(REPO, 'benchmarks', 'results', 'deploy_cpu.json')
    fresh = zoo_tool.render_page(zoo_tool.load_zoo(zoo_tool.find_metafiles()), zoo_tool.load_bench(bench), bench,
                                 page, osp.join(REPO, 'docs', 'model_zoo.png'))
    with open(page, encoding='utf-8') as f:
        assert fresh + '\n' == f.read()  # run() writes the page with a final newline
