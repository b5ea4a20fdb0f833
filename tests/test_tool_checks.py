"""The tools' early checks: missing or malformed dataset files (annotation files, images), checkpoints, the work
dir, missing backbone checkpoints, torchvision-initialised backbones; and images that fail to load during a run."""
import io
import json
import os
import os.path as osp
import shutil
import subprocess
import sys
import types

import numpy as np
import pytest
import torch
from mmcv.transforms import LoadImageFromFile
from mmengine.config import Config
from PIL import Image
from torch._utils import ExceptionWrapper

from mmlight.datasets.demo_coco import CLASSES, DemoSpec, generate_demo_coco
from mmlight.datasets.demo_imagenet import TinyImageNetSpec, generate_tiny_imagenet
from mmlight.utils.checkpoint import UnsafeCheckpointError
from mmlight.utils.data_check import (DataFileError, check_backbone_init, check_checkpoint_file, check_coco_annotations,
                                      check_dataset_contents, check_dataset_files, check_image_files,
                                      check_torchvision_init, check_work_dir, image_file_problem, load_json_file,
                                      loading_error_line)

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
    assert 'tools/run_demo.sh' in message and '\n' not in message  # one line


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
    assert '\n' not in str(error.value)
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


# ------------------------------------------------------------------------------------------------ evaluator, work dir
def test_the_evaluators_annotation_file_is_checked(tmp_path):
    (tmp_path / 'annotations').mkdir()
    (tmp_path / 'annotations' / 'instances_val2017.json').write_text('{}')
    (tmp_path / 'val2017').mkdir()
    missing = str(tmp_path / 'elsewhere.json')
    cfg = _cfg(str(tmp_path) + '/', test_evaluator=[dict(type='CocoMetric', ann_file=missing)])
    with pytest.raises(FileNotFoundError, match=missing):
        check_dataset_files(cfg, ['test_dataloader'], ['test_evaluator'])
    check_dataset_files(cfg, ['test_dataloader'])  # not asked for: not checked


def test_a_work_dir_that_cannot_be_a_folder(tmp_path):
    (tmp_path / 'file').write_text('')
    with pytest.raises(DataFileError, match=r'work dir .*file cannot be created \(it is a file\)'):
        check_work_dir(str(tmp_path / 'file'))
    with pytest.raises(DataFileError, match=r'work dir .*file/sub/dir cannot be created \(.*file is a file\)'):
        check_work_dir(str(tmp_path / 'file' / 'sub' / 'dir'))
    check_work_dir(str(tmp_path / 'new' / 'dir'))  # to be created
    check_work_dir(str(tmp_path))  # a folder


# ------------------------------------------------------------------------------------------------ annotation files
def _coco(num_images=1, **changes):
    data = dict(images=[dict(id=i + 1, file_name=f'{i:06d}.jpg', width=64, height=64) for i in range(num_images)],
                annotations=[dict(id=1, image_id=1, category_id=1, bbox=[1, 2, 10, 20], area=200, iscrowd=0)],
                categories=[dict(id=i + 1, name=name) for i, name in enumerate(CLASSES)])
    data.update(changes)
    return data


def test_malformed_json_names_the_file_and_the_position(tmp_path):
    path = tmp_path / 'ann.json'
    path.write_text('{"images": [ ,')
    with pytest.raises(DataFileError, match=rf'^annotation file {path} is not valid JSON: Expecting value at line 1 '
                       r'column 14$'):
        load_json_file(str(path))
    path.write_text('  \n')
    with pytest.raises(DataFileError, match=rf'{path} is empty'):
        load_json_file(str(path))
    path.write_bytes(b'{"a": "\xff"}')
    with pytest.raises(DataFileError, match=rf'{path} is not valid JSON: not UTF-8 text'):
        load_json_file(str(path))
    with pytest.raises(DataFileError, match='cannot be read'):
        load_json_file(str(tmp_path))  # a folder
    path.write_text(json.dumps(_coco()))
    assert load_json_file(str(path)) == _coco()


@pytest.mark.parametrize('data, message', [
    ([], r'the top level is a list, expected an object'),
    (_coco(images=None), r'"images" is a NoneType, expected a list'),
    ({k: v for k, v in _coco().items() if k != 'images'}, r'it has no "images" list \(found keys: annotations, '),
    ({k: v for k, v in _coco().items() if k != 'categories'}, r'it has no "categories" list'),
    (_coco(images=[dict(id=1, width=64, height=64)]), r'images\[0\] has no "file_name"'),
    (_coco(images=[7]), r'images\[0\] is a int, expected an object'),
    (_coco(images=[dict(id=1, file_name='', width=64, height=64)]), r'images\[0\]\["file_name"\] is \'\''),
    (_coco(annotations=[dict(id=1, image_id=1, category_id=1, bbox=[1, 2, 3], area=3)]),
     r'annotations\[0\]\["bbox"\] is \[1, 2, 3\], expected \[x, y, width, height\]'),
    (_coco(annotations=[dict(id=1, image_id=1, category_id=1, bbox=[1, 2, 3, 4])]), r'annotations\[0\] has no "area"'),
    (_coco(annotations=[dict(id=1, image_id=1, category_id=1, bbox=[1, 2, 3, 4], area='4')]),
     r'annotations\[0\]\["area"\] is \'4\', expected a number'),
    (_coco(annotations=[dict(id=5, image_id=1, category_id=1, bbox=[1, 2, 3, 4], area=12)] * 2),
     r'annotations\[1\] repeats the annotation id 5'),
])
def test_coco_structure_errors_name_the_entry(data, message):
    with pytest.raises(DataFileError, match=message) as error:
        check_coco_annotations('ann.json', data=data)
    assert str(error.value).startswith('annotation file ann.json') and '\n' not in str(error.value)


def test_coco_files_without_annotations_pass_and_give_the_file_names():
    assert check_coco_annotations('ann.json', CLASSES, data=_coco(num_images=2)) == ['000000.jpg', '000001.jpg']
    no_annotations = {k: v for k, v in _coco().items() if k != 'annotations'}  # e.g. image_info_test-dev2017.json
    assert check_coco_annotations('ann.json', data=no_annotations) == ['000000.jpg']


def test_classes_that_are_not_categories_of_the_file():
    """mmdet would drop the class silently and shift every later label."""
    with pytest.raises(DataFileError, match=r"has no category named 'dog', 'cat' \(its categories: circle, square, "):
        check_coco_annotations('ann.json', ('circle', 'dog', 'cat'), data=_coco())
    check_coco_annotations('ann.json', ('square', 'circle'), data=_coco())  # a subset is fine


# ------------------------------------------------------------------------------------------------ images
def _image_bytes(fmt: str, size: int = 48) -> bytes:
    pixels = (np.random.default_rng(0).random((size, size, 3)) * 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, fmt)
    return buffer.getvalue()


@pytest.fixture
def images(tmp_path):
    jpeg, png = _image_bytes('JPEG'), _image_bytes('PNG')
    files = dict(jpeg=jpeg, png=png, bmp=_image_bytes('BMP'), jpeg_trailer=jpeg + b'\x00trailer' * 8,
                 png_named_jpg=png, empty=b'', text=b'not an image at all',
                 jpeg_truncated=jpeg[:len(jpeg) // 2], png_truncated=png[:len(png) // 2],
                 jpeg_garbage=b'\xff\xd8\xff\xe0' + bytes(range(256)) * 2 + b'\xff\xd9')
    paths = {}
    for name, data in files.items():
        paths[name] = tmp_path / f'{name}.{"png" if name.startswith("png") and "jpg" not in name else "jpg"}'
        paths[name].write_bytes(data)
    paths['missing'] = tmp_path / 'missing.jpg'
    paths['folder'] = tmp_path / 'folder.jpg'
    paths['folder'].mkdir()
    return {name: str(path) for name, path in paths.items()}


def test_image_problems(images):
    """Header and end marker first; a file that fails them is decoded, so only what the decoder refuses is bad."""
    assert {name: image_file_problem(path) for name, path in images.items()} == {
        'jpeg': None, 'png': None, 'bmp': None,
        'jpeg_trailer': None,  # bytes after the JPEG end marker: the decoder ignores them
        'png_named_jpg': None,  # the content decides, not the extension
        'empty': 'is empty',
        'text': "is not an image (it starts with b'not an i' and does not decode)",
        'jpeg_truncated': 'is truncated or corrupt (a JPEG file without its end marker that does not decode)',
        'png_truncated': 'is truncated or corrupt (a PNG file without its end marker that does not decode)',
        'jpeg_garbage': None,  # looks whole: only a full decode finds it (see loading_error_line)
        'missing': 'does not exist',
        'folder': 'is a directory, not an image',
    }


@pytest.mark.parametrize('threads', [1, 4])
def test_check_image_files_names_the_first_bad_image_and_counts_the_rest(images, threads):
    good = [images['jpeg'], images['png']] * 40  # more than 64: the threaded path when threads > 1
    with pytest.raises(DataFileError) as error:
        check_image_files(good + [images['missing'], images['text'], images['jpeg']], 'ann.json', threads=threads)
    assert str(error.value) == (f'image {images["missing"]} (named in ann.json) does not exist; 1 more of its 83 '
                                'images cannot be loaded either')
    check_image_files(good, 'ann.json', threads=threads)


# ------------------------------------------------------------------------------------------------ datasets
@pytest.fixture(scope='module')
def coco_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('data') / 'demo_coco')
    generate_demo_coco(root, DemoSpec(num_train=8, num_val=4, image_size=64, min_object=8, max_object=24))
    return root


def _demo_cfg(root: str) -> Config:
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'demo', 'retinanet_compconv128_demo.py'))
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[loader].dataset.data_root = root + '/'
    cfg.val_evaluator.ann_file = cfg.test_evaluator.ann_file = osp.join(root, 'annotations', 'instances_val2017.json')
    return cfg


def test_dataset_contents_of_a_good_coco_set_pass(coco_root):
    check_dataset_contents(_demo_cfg(coco_root), ['train_dataloader', 'val_dataloader'], ['val_evaluator'])


def test_dataset_contents_find_a_bad_annotation_file_and_a_bad_image(coco_root, tmp_path):
    root = str(tmp_path / 'coco')
    shutil.copytree(coco_root, root)
    cfg = _demo_cfg(root)
    os.remove(osp.join(root, 'train2017', '000003.jpg'))
    with pytest.raises(DataFileError, match=rf'image {root}/train2017/000003.jpg \(named in .*train2017.json\) does '
                       'not exist'):
        check_dataset_contents(cfg, ['train_dataloader'])
    check_dataset_contents(cfg, ['train_dataloader'], images=False)  # the annotation file alone is fine
    check_dataset_contents(cfg, ['val_dataloader'])  # the train images are not asked for
    ann = osp.join(root, 'annotations', 'instances_val2017.json')
    with open(ann, 'w') as f:
        f.write('{"images": [ ,')
    for loaders, evaluators in ((['val_dataloader'], []), ([], ['val_evaluator'])):
        with pytest.raises(DataFileError, match=rf'annotation file {ann} is not valid JSON'):
            check_dataset_contents(cfg, loaders, evaluators)


def test_dataset_contents_use_the_configs_classes(coco_root):
    cfg = _demo_cfg(coco_root)
    cfg.train_dataloader.dataset.metainfo = dict(classes=('circle', 'hexagon'))
    with pytest.raises(DataFileError, match="no category named 'hexagon'"):
        check_dataset_contents(cfg, ['train_dataloader'])
    del cfg.train_dataloader.dataset.metainfo  # CocoDataset's 80 COCO classes: none is a shape
    with pytest.raises(DataFileError, match="no category named 'person', 'bicycle'"):
        check_dataset_contents(cfg, ['train_dataloader'])


def test_dataset_contents_of_an_imagenet_list(tmp_path):
    root = tmp_path / 'imagenet'
    generate_tiny_imagenet(str(root), TinyImageNetSpec(train_per_class=1, val_per_class=1, image_size=32))
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'demo', 'mobilenetv1-0.5_cls_demo.py'))
    cfg.train_dataloader.dataset.data_root = str(root)
    check_dataset_contents(cfg, ['train_dataloader'])  # class folders
    (root / 'meta').mkdir()
    (root / 'meta' / 'train.txt').write_text('circle/00000.png 0\nsquare/00000.png one\n')
    with pytest.raises(DataFileError, match=r'meta/train.txt, line 2: expected "<relative path> <label >= 0>"'):
        check_dataset_contents(cfg, ['train_dataloader'])
    (root / 'meta' / 'train.txt').write_text('circle/00000.png 0\nsquare/00001.png 1\n')
    with pytest.raises(DataFileError, match=r'image .*train/square/00001.png \(named in .*meta/train.txt\) does not'):
        check_dataset_contents(cfg, ['train_dataloader'])
    (root / 'meta' / 'train.txt').write_bytes(b'circle/00000.png 0\n\xff\n')
    with pytest.raises(DataFileError, match='is not UTF-8 text'):
        check_dataset_contents(cfg, ['train_dataloader'])


# ------------------------------------------------------------------------------------------------ during the run
def _raised(function):
    try:
        function()
    except Exception as error:  # noqa: B902
        return error
    raise AssertionError('nothing raised')


def _in_worker(function):
    """The exception a DataLoader worker running ``function`` gives the main process (torch's re-raise)."""
    try:
        function()
    except Exception:  # noqa: B902
        wrapper = ExceptionWrapper(where='in DataLoader worker process 0')
    return _raised(wrapper.reraise)


def test_images_that_fail_to_load_during_a_run_are_one_line(images):
    for name in ('jpeg_garbage', 'text'):
        load = LoadImageFromFile()
        for error in (_raised(lambda: load(dict(img_path=images[name]))),
                      _in_worker(lambda: load(dict(img_path=images[name])))):
            assert isinstance(error, AssertionError)
            assert loading_error_line(error) == (f'image {images[name]} cannot be decoded (not an image, or a '
                                                 'truncated or corrupt file); replace it or remove it from the '
                                                 'annotation file')
    load = LoadImageFromFile()
    for error in (_raised(lambda: load(dict(img_path=images['missing']))),
                  _in_worker(lambda: load(dict(img_path=images['missing'])))):
        assert isinstance(error, FileNotFoundError)
        assert loading_error_line(error) == (f'image {images["missing"]} does not exist; restore it or remove it '
                                             'from the annotation file')


def test_other_errors_are_left_alone(tmp_path):
    assert loading_error_line(_raised(lambda: open(tmp_path / 'missing.json'))) is None  # not an image load
    assert loading_error_line(_in_worker(lambda: open(tmp_path / 'missing.json'))) is None
    assert loading_error_line(AssertionError('loss is nan')) is None
    assert loading_error_line(ValueError('failed to load image: x.jpg')) is None


# ------------------------------------------------------------------------------------------------ checkpoints
class _Custom:
    pass


def test_checkpoint_files(tmp_path):
    good = tmp_path / 'good.pth'
    torch.save(dict(state_dict=dict(weight=torch.zeros(2)), meta=dict(epoch=1)), good)
    check_checkpoint_file(str(good))
    torch.save(dict(weight=torch.zeros(2)), tmp_path / 'plain.pth')
    check_checkpoint_file(str(tmp_path / 'plain.pth'))  # a bare state dict
    check_checkpoint_file('https://example.org/x.pth')  # left to mmengine
    (tmp_path / 'text.pth').write_text('hello')
    (tmp_path / 'truncated.pth').write_bytes(good.read_bytes()[:300])
    torch.save([1, 2], tmp_path / 'list.pth')
    torch.save(dict(state_dict=dict(weight=torch.zeros(2)), extra=_Custom()), tmp_path / 'unsafe.pth')
    cases = {'missing.pth': r'^checkpoint .*missing.pth not found$',
             '': r'^checkpoint .* is a directory, expected a checkpoint file',
             'text.pth': r'^checkpoint .*text.pth is not a PyTorch checkpoint \(neither the zip format',
             'truncated.pth': r'^checkpoint .*truncated.pth is not a readable PyTorch checkpoint, corrupt or truncated',
             'list.pth': r'^checkpoint .*list.pth: holds no state dict \(.*found a list\)'}
    for name, message in cases.items():
        with pytest.raises(DataFileError, match=message) as error:
            check_checkpoint_file(str(tmp_path / name))
        assert '\n' not in str(error.value)
    with pytest.raises(DataFileError, match=r'^--resume checkpoint .*missing.pth not found'):
        check_checkpoint_file(str(tmp_path / 'missing.pth'), '--resume checkpoint')
    with pytest.raises(UnsafeCheckpointError, match='_Custom'):
        check_checkpoint_file(str(tmp_path / 'unsafe.pth'))


def test_only_datasets_that_read_coco_files_as_coco_dataset_are_parsed(coco_root, tmp_path):
    """LVIS v1 names its images by coco_url, not file_name: its files are left to its own reader."""
    root = str(tmp_path / 'coco')
    shutil.copytree(coco_root, root)
    cfg = _demo_cfg(root)
    with open(osp.join(root, 'annotations', 'instances_train2017.json'), 'w') as f:
        json.dump(dict(images=[dict(id=1, coco_url='http://x/000000.jpg', width=64, height=64)], categories=[]), f)
    cfg.train_dataloader.dataset.type = 'LVISV1Dataset'
    check_dataset_contents(cfg, ['train_dataloader'])
    cfg.train_dataloader.dataset.type = 'CocoDataset'
    with pytest.raises(DataFileError, match=r'images\[0\] has no "file_name"'):
        check_dataset_contents(cfg, ['train_dataloader'])
