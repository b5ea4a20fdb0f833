"""The embedded demo dataset: deterministic, COCO-readable, consistent with the demo config, never clobbers."""
import hashlib
import json
import os
import os.path as osp

import pytest
from mmengine.config import Config

from conftest import REPO
from mmlight.datasets import DEMO_CLASSES, DemoSpec, generate_demo_coco

SMALL = DemoSpec(num_train=12, num_val=6, image_size=96)


def _digest(root):
    h = hashlib.sha256()
    for dirpath, _, files in sorted(os.walk(root)):
        for name in sorted(files):
            with open(osp.join(dirpath, name), 'rb') as f:
                h.update(name.encode() + f.read())
    return h.hexdigest()


def test_generation_is_deterministic(tmp_path):
    assert generate_demo_coco(str(tmp_path / 'a'), SMALL)
    assert generate_demo_coco(str(tmp_path / 'b'), SMALL)
    assert _digest(tmp_path / 'a') == _digest(tmp_path / 'b')
    assert not generate_demo_coco(str(tmp_path / 'a'), SMALL)  # identical spec already there: untouched


def test_coco_dataset_reads_it(tmp_path):
    from mmdet.datasets import CocoDataset
    root = str(tmp_path / 'demo')
    generate_demo_coco(root, SMALL)
    dataset = CocoDataset(data_root=root, ann_file='annotations/instances_train2017.json',
                          data_prefix=dict(img='train2017/'), metainfo=dict(classes=DEMO_CLASSES), pipeline=[])
    assert len(dataset) == SMALL.num_train
    labels, sizes = set(), []
    for info in (dataset.get_data_info(i) for i in range(len(dataset))):
        assert osp.isfile(info['img_path']) and 1 <= len(info['instances']) <= SMALL.max_objects
        for instance in info['instances']:
            x0, y0, x1, y1 = instance['bbox']
            assert 0 <= x0 < x1 <= SMALL.image_size and 0 <= y0 < y1 <= SMALL.image_size
            labels.add(instance['bbox_label'])
            sizes.append(max(x1 - x0, y1 - y0))
    assert len(labels) >= 4 and max(sizes) > 2 * min(sizes)


def test_demo_config_matches_the_generator():
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'demo', 'retinanet_compconv128_demo.py'))
    assert tuple(cfg.metainfo['classes']) == DEMO_CLASSES
    assert cfg.model.bbox_head.num_classes == len(DEMO_CLASSES)
    assert cfg.train_dataloader.dataset.data_root == 'data/demo_coco/'


def test_refuses_to_write_into_foreign_data(tmp_path):
    root = tmp_path / 'mine'
    root.mkdir()
    (root / 'precious.json').write_text(json.dumps({'keep': True}))
    with pytest.raises(FileExistsError, match='not made by the demo generator'):
        generate_demo_coco(str(root), SMALL)
    assert os.listdir(root) == ['precious.json']


@pytest.mark.parametrize('kwargs,word', [(dict(num_train=0), 'num_train'), (dict(image_size=50), 'image_size'),
                                         (dict(min_object=80), 'min_object')])
def test_bad_spec_is_rejected(kwargs, word):
    with pytest.raises(ValueError, match=word):
        DemoSpec(**kwargs)
