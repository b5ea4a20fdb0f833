"""Every config under configs/ loads, builds, trains one step and predicts on a tiny batch."""
import glob
import os.path as osp
import time

import pytest
import torch
from mmengine.config import Config

from conftest import REPO

CONFIGS = sorted(glob.glob(osp.join(REPO, 'configs', '**', '*.py'), recursive=True))
CONFIGS = [c for c in CONFIGS if '_base_' not in c]


def test_configs_are_found():
    names = {osp.relpath(c, osp.join(REPO, 'configs')) for c in CONFIGS}
    assert {'retinanet_compconv128_coco.py', 'faster-rcnn_compconv128_coco.py',
            'demo/retinanet_compconv128_demo.py'} <= names


def build_detector(config_path):
    from mmdet.registry import MODELS
    from mmengine.registry import init_default_scope
    cfg = Config.fromfile(config_path)
    assert 'mmlight' in cfg.custom_imports['imports']
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    cfg.model.backbone.init_cfg = None  # torchvision:// weights need torchvision and a download
    return cfg, MODELS.build(cfg.model)


@pytest.mark.parametrize('config_path', CONFIGS, ids=lambda p: osp.relpath(p, REPO))
def test_config_trains_and_predicts(config_path):
    from mmdet.testing import demo_mm_inputs
    from mmengine.logging import MessageHub
    cfg, detector = build_detector(config_path)
    convs = [m for m in detector.backbone.modules() if type(m).__name__ == 'CompConv128']
    assert len(convs) == 53  # stem + 16 blocks x 3 + 4 downsample convs of ResNet-50
    assert sum(c.depth > 0 for c in convs) > 40

    hub = MessageHub.get_instance(f'test-{osp.basename(config_path)}-{time.time()}')
    hub.update_info('iter', 0)
    hub.update_info('epoch', 0)
    detector.init_weights()
    num_classes = cfg.model.get('bbox_head', cfg.model.get('roi_head', {}).get('bbox_head'))['num_classes']
    packed = demo_mm_inputs(2, [[3, 96, 96], [3, 80, 100]], num_classes=num_classes)

    detector.train()
    data = detector.data_preprocessor(packed, True)
    losses = detector(**data, mode='loss')
    loss, _ = detector.parse_losses(losses)
    assert torch.isfinite(loss)
    loss.backward()
    no_grad = [n for n, p in detector.backbone.named_parameters() if p.requires_grad and p.grad is None]
    assert not no_grad

    detector.eval()
    with torch.no_grad():
        data = detector.data_preprocessor(packed, False)
        results = detector(**data, mode='predict')
    assert len(results) == 2 and all('bboxes' in r.pred_instances for r in results)


@pytest.mark.parametrize('config_path', CONFIGS, ids=lambda p: osp.relpath(p, REPO))
def test_neck_matches_backbone_outputs(config_path):
    cfg, detector = build_detector(config_path)
    detector.backbone.eval()
    with torch.no_grad():
        features = detector.backbone(torch.zeros(1, 3, 64, 64))
    assert list(cfg.model.neck.in_channels) == [f.shape[1] for f in features]
