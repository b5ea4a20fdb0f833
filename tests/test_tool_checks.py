"""The tools' early checks: missing dataset files, missing backbone checkpoints, torchvision-initialised backbones."""
import os.path as osp
import subprocess
import sys
import types

import pytest
from mmengine.config import Config

from mmlight.utils.data_check import check_backbone_init, check_dataset_files, check_torchvision_init

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))


def _dataset(data_root, split):
    return dict(type='CocoDataset', data_root=data_root, ann_file=f'annotations/instances_{split}2017.json',
                data_prefix=dict(img=f'{split}2017/'))


def _cfg(data_root, init_checkpoint=None, **extra):
    init_cfg = dict(type='Pretrained', checkpoint=init_checkpoint) if init_checkpoint else None
    return Config(dict(
        model=dict(backbone=dict(init_cfg=init_cfg)),
        train_dataloader=dict(dataset=_dataset(data_root, 'train')),
        test_dataloader=dict(dataset=dict(type='RepeatDataset', times=2, dataset=_dataset(data_root, 'val'))),
        **extra))


def test_missing_dataset_files_are_all_named(tmp_path):
    root = str(tmp_path / 'coco') + '/'
    with pytest.raises(FileNotFoundError) as error:
        check_dataset_files(_cfg(root), ['test_dataloader'])
    message = str(error.value)
    assert root + 'annotations/instances_val2017.json' in message and root + 'val2017/' in message
    assert root + 'train2017/' not in message  # only the loaders asked for
    assert 'tools/run_demo.sh' in message


def test_the_train_loader_is_checked(tmp_path):
    root = str(tmp_path / 'coco') + '/'
    (tmp_path / 'coco' / 'annotations').mkdir(parents=True)
    (tmp_path / 'coco' / 'annotations' / 'instances_train2017.json').write_text('{}')
    with pytest.raises(FileNotFoundError) as error:
        check_dataset_files(_cfg(root), ['train_dataloader'])
    message = str(error.value)
    assert root + 'train2017/' in message and 'instances_train2017.json' not in message


def test_present_dataset_files_pass(tmp_path):
    (tmp_path / 'annotations').mkdir()
    for split in ('train', 'val'):
        (tmp_path / 'annotations' / f'instances_{split}2017.json').write_text('{}')
        (tmp_path / f'{split}2017').mkdir()
    check_dataset_files(_cfg(str(tmp_path) + '/'), ['test_dataloader', 'train_dataloader'])


def test_torchvision_init_without_torchvision(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, 'torchvision', None)  # makes `import torchvision` raise ImportError
    with pytest.raises(ModuleNotFoundError, match='model.backbone.init_cfg=None'):
        check_torchvision_init(_cfg(str(tmp_path), 'torchvision://resnet50'))
    check_torchvision_init(_cfg(str(tmp_path)))  # no init_cfg: nothing to check


def test_torchvision_init_with_torchvision(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, 'torchvision', types.ModuleType('torchvision'))
    check_torchvision_init(_cfg(str(tmp_path), 'torchvision://resnet50'))  # importable: the run may proceed


def test_missing_backbone_checkpoint_names_the_file_and_the_recipe(tmp_path):
    missing = str(tmp_path / 'checkpoints' / 'backbone.pth')
    how = 'python tools/model_converters/x.py official.pth ' + missing
    with pytest.raises(FileNotFoundError) as error:
        check_backbone_init(_cfg(str(tmp_path), missing, backbone_init_help=how))
    assert missing in str(error.value) and how in str(error.value) and 'init_cfg=None' in str(error.value)
    (tmp_path / 'checkpoints').mkdir()
    (tmp_path / 'checkpoints' / 'backbone.pth').write_bytes(b'')
    check_backbone_init(_cfg(str(tmp_path), missing))  # present: no error
    check_backbone_init(_cfg(str(tmp_path), 'https://example.org/weights.pth'))  # remote: left to mmengine


@pytest.mark.parametrize('tool,extra', [('train.py', []), ('test.py', ['missing.pth']),
                                        ('analysis/get_flops.py', [])])
@pytest.mark.parametrize('problem', ['missing', 'syntax', 'missing_base'])
def test_a_bad_config_path_is_one_line(tool, extra, problem, tmp_path):
    """A config that does not exist, does not parse or names a missing _base_: one `error:` line naming the file,
    exit status 1, no traceback."""
    config = tmp_path / 'cfg.py'
    if problem == 'syntax':
        config.write_text('model = dict(\n')
    elif problem == 'missing_base':
        config.write_text("_base_ = ['./nowhere.py']\n")
    result = subprocess.run([sys.executable, osp.join(REPO, 'tools', tool), str(config)] + extra, cwd=str(tmp_path),
                            capture_output=True, text=True, timeout=300)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1 and 'Traceback' not in result.stderr, result.stderr
    assert lines[-1].startswith('error: config ') and str(config) in lines[-1], lines[-1]
    why = {'missing': 'not found', 'syntax': "line 1: '(' was never closed", 'missing_base': 'nowhere.py'}[problem]
    assert why in lines[-1]
