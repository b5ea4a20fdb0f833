"""The tools' early checks: missing dataset files and torchvision-initialised backbones."""
import importlib.util

import pytest
from mmengine.config import Config

from mmlight.utils.data_check import check_dataset_files, check_torchvision_init


def _cfg(data_root, init_checkpoint=None):
    init_cfg = dict(type='Pretrained', checkpoint=init_checkpoint) if init_checkpoint else None
    dataset = dict(type='CocoDataset', data_root=data_root, ann_file='annotations/instances_val2017.json',
                   data_prefix=dict(img='val2017/'))
    return Config(dict(model=dict(backbone=dict(init_cfg=init_cfg)),
                       test_dataloader=dict(dataset=dict(type='RepeatDataset', times=2, dataset=dataset))))


def test_missing_dataset_files_are_all_named(tmp_path):
    root = str(tmp_path / 'coco') + '/'
    with pytest.raises(FileNotFoundError) as error:
        check_dataset_files(_cfg(root), ['test_dataloader'])
    message = str(error.value)
    assert root + 'annotations/instances_val2017.json' in message and root + 'val2017/' in message
    assert 'tools/run_demo.sh' in message


def test_present_dataset_files_pass(tmp_path):
    (tmp_path / 'annotations').mkdir()
    (tmp_path / 'annotations' / 'instances_val2017.json').write_text('{}')
    (tmp_path / 'val2017').mkdir()
    check_dataset_files(_cfg(str(tmp_path) + '/'), ['test_dataloader', 'train_dataloader'])


def test_torchvision_init_needs_torchvision(tmp_path):
    cfg = _cfg(str(tmp_path), 'torchvision://resnet50')
    if importlib.util.find_spec('torchvision') is None:
        with pytest.raises(ModuleNotFoundError, match='model.backbone.init_cfg=None'):
            check_torchvision_init(cfg)
    else:
        check_torchvision_init(cfg)
    check_torchvision_init(_cfg(str(tmp_path)))  # no init_cfg: nothing to check
    check_torchvision_init(_cfg(str(tmp_path), 'work_dirs/backbone.pth'))
