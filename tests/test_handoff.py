"""ImageNet -> detection hand-off: every detection config names its own backbone's ImageNet checkpoint (or converted
official weights), and a classifier checkpoint of the matching ImageNet config, through extract_backbone.py, loads into
the detector with no missing or unexpected key and gives the same backbone features.
"""
import glob
import os.path as osp
import re

import pytest
import torch
from mmengine.config import Config

from conftest import REPO, load_tool, randomise_bn
from mmlight.utils.data_check import check_backbone_checkpoint_keys

ALL_DETECTION = sorted(p for p in glob.glob(osp.join(REPO, 'configs', '**', '*.py'), recursive=True)
                       if f'{osp.sep}imagenet{osp.sep}' not in p and f'{osp.sep}demo{osp.sep}' not in p)
# configs/swap puts compact convs into mmdet's own backbones: they start from those backbones' dense ImageNet
# weights (DCD inherits them) or from scratch, checked below, not from an mmlight ImageNet config
SWAP_CONFIGS = [p for p in ALL_DETECTION if f'{osp.sep}swap{osp.sep}' in p]
DETECTION_CONFIGS = [p for p in ALL_DETECTION if p not in SWAP_CONFIGS]


def _imagenet_config(cfg: Config):
    """The configs/imagenet/*.py a detection config's backbone_init_help trains, if any."""
    found = re.search(r'configs/imagenet/[\w.\-]+\.py', cfg.get('backbone_init_help', ''))
    return osp.join(REPO, found.group(0)) if found else None


@pytest.mark.parametrize('path', DETECTION_CONFIGS, ids=lambda p: osp.relpath(p, REPO))
def test_every_detection_config_initialises_from_its_own_imagenet_backbone(path):
    cfg = Config.fromfile(path)
    init_cfg = cfg.model.backbone.get('init_cfg')
    assert init_cfg and init_cfg['type'] == 'Pretrained' and init_cfg.get('prefix') == 'backbone.', init_cfg
    checkpoint = init_cfg['checkpoint']
    assert checkpoint.startswith('checkpoints/') and 'torchvision' not in checkpoint  # never torchvision's R50
    help_text = cfg.get('backbone_init_help', '')
    assert checkpoint in help_text  # the commands that make the file name it
    imagenet = _imagenet_config(cfg)
    if imagenet is None:  # converted official weights (DCD, MicroNet)
        assert 'model_converters/' in help_text and 'official' in help_text
    else:
        assert osp.isfile(imagenet) and 'extract_backbone.py' in help_text


@pytest.mark.parametrize('path', SWAP_CONFIGS, ids=lambda p: osp.relpath(p, REPO))
def test_swap_configs_start_from_the_dense_backbones_weights_or_from_scratch(path):
    backbone = Config.fromfile(path).model.backbone
    assert backbone['type'] == 'SwapConvs'
    init_cfg = backbone.get('init_cfg') or {}
    if backbone.get('inherit', True):  # the swapped layers take the dense weights: a dense checkpoint must be named
        assert init_cfg.get('type') == 'Pretrained', init_cfg
        assert not init_cfg['checkpoint'].startswith('torchvision://'), init_cfg  # no torchvision needed
    else:
        assert init_cfg.get('type') != 'Pretrained', init_cfg


HANDOFF = [p for p in DETECTION_CONFIGS if _imagenet_config(Config.fromfile(p)) is not None]


@pytest.mark.parametrize('path', HANDOFF, ids=lambda p: osp.relpath(p, REPO))
def test_classifier_backbone_loads_into_the_detector_and_gives_its_features(path, tmp_path):
    from mmdet.registry import MODELS
    det_cfg = Config.fromfile(path)
    cls_cfg = Config.fromfile(_imagenet_config(det_cfg))
    classifier = MODELS.build(cls_cfg.model)
    classifier.init_weights()
    # non-trivial BN statistics, so that a lost buffer would show
    randomise_bn(classifier, weight=None, bias=None, mean=(-0.1, 0.1), var=(0.5, 1.5))
    src, dst = str(tmp_path / 'epoch_1.pth'), str(tmp_path / 'backbone.pth')
    torch.save(dict(state_dict=classifier.state_dict(), meta=dict(epoch=1)), src)
    assert load_tool('model_converters', 'extract_backbone.py').main([src, dst]) == 0

    det_cfg.model.backbone.init_cfg.checkpoint = dst
    detector = MODELS.build(det_cfg.model)
    check_backbone_checkpoint_keys(detector, det_cfg)  # no missing / unexpected key, no shape mismatch
    detector.init_weights()
    expected = classifier.backbone.state_dict()
    loaded = detector.backbone.state_dict()
    assert sorted(loaded) == sorted(expected)
    assert all(torch.equal(loaded[k], v) for k, v in expected.items())

    classifier.eval()
    detector.eval()
    size = 320 if 'xception' in path else 96
    x = torch.randn(1, 3, size, size)
    with torch.no_grad():
        ours = detector.backbone(x)[-1]
        theirs = classifier.backbone(x)[-1]
    # both end at the backbone's last stage, so the detector's deepest tap is the classifier's feature map
    torch.testing.assert_close(ours, theirs)
