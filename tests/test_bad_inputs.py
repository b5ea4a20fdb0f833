"""Every tool in tools/ run as a user runs it, on bad input: a missing or malformed config, annotation file, image,
checkpoint, work dir or argument. Each must stop with its exit status and one last stderr line ``error: ...`` that
names the file or parameter and what is wrong, with no traceback, and must write nothing (each case runs in an empty
folder, which is still empty afterwards; the tools' default work dir is in it).

The cases are the catalogue of docs/troubleshooting.md. Inputs (a tiny generated COCO-format set, a tiny ImageNet-
layout set, their corrupt copies, configs and checkpoints) are made once for the module, outside the case folders.
"""
import json
import os
import os.path as osp
import resource
import shutil
import subprocess
import sys
from typing import Dict, List, NamedTuple, Optional, Sequence

import pytest
import torch

from mmlight.datasets.demo_coco import DemoSpec, generate_demo_coco
from mmlight.datasets.demo_imagenet import TinyImageNetSpec, generate_tiny_imagenet

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
TOOLS = osp.join(REPO, 'tools')
PY = sys.executable
DET_CONFIG = osp.join(REPO, 'configs', 'demo', 'retinanet_compconv128_demo.py')
CLS_CONFIG = osp.join(REPO, 'configs', 'demo', 'mobilenetv1-0.5_cls_demo.py')

# One epoch on the tiny set, a checkpoint after it: a case that reaches training writes one, if anything.
DET_TEMPLATE = '''_base_ = [{base!r}]
data_root = {root!r}
train_dataloader = dict(batch_size=4, dataset=dict(data_root=data_root))
val_dataloader = dict(dataset=dict(data_root=data_root))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val2017.json')
test_evaluator = val_evaluator
train_cfg = dict(max_epochs=1, val_interval=1)
default_hooks = dict(checkpoint=dict(interval=1))
'''
CLS_TEMPLATE = '''_base_ = [{base!r}]
data_root = {root!r}
train_dataloader = dict(dataset=dict(data_root=data_root))
val_dataloader = dict(dataset=dict(data_root=data_root))
test_dataloader = val_dataloader
train_cfg = dict(max_epochs=1, val_interval=1)
'''


class Case(NamedTuple):
    """``argv`` and ``last`` (the text the last stderr line must contain) are formatted with the inputs' paths;
    ``also``: a line that must appear in stderr before the last one."""
    argv: Sequence[str]
    last: str
    status: int = 1
    env: Optional[Dict[str, str]] = None
    also: Optional[str] = None


def _corrupt_coco(good: str, root: str, how: str) -> None:
    shutil.copytree(good, root)
    train, val = osp.join(root, 'train2017'), osp.join(root, 'val2017')
    if how == 'bad_json':
        with open(osp.join(root, 'annotations', 'instances_train2017.json'), 'w') as f:
            f.write('{"images": [ ,')
    elif how == 'not_coco':
        with open(osp.join(root, 'annotations', 'instances_val2017.json'), 'w') as f:
            json.dump([{'file_name': '000000.jpg'}], f)
    elif how == 'missing_image':
        os.remove(osp.join(train, '000002.jpg'))
    elif how == 'not_image':
        with open(osp.join(val, '000001.jpg'), 'w') as f:
            f.write('<html>not an image</html>')
    elif how == 'truncated':
        with open(osp.join(train, '000003.jpg'), 'rb') as f:
            data = f.read()
        with open(osp.join(train, '000003.jpg'), 'wb') as f:
            f.write(data[:len(data) // 2])
    elif how == 'no_images':
        shutil.rmtree(train)


@pytest.fixture(scope='module')
def inputs(tmp_path_factory) -> Dict[str, str]:
    """Paths of the module's inputs, by name (``{coco}``, ``{det_bad_json}``, ``{good_ckpt}``...)."""
    base = tmp_path_factory.mktemp('inputs')
    paths = dict(py=PY, tools=TOOLS, det_config=DET_CONFIG, base=str(base))
    coco = str(base / 'coco')
    generate_demo_coco(coco, DemoSpec(num_train=8, num_val=4, image_size=64, min_object=8, max_object=24))
    for how in ('', 'bad_json', 'not_coco', 'missing_image', 'not_image', 'truncated', 'no_images'):
        root = coco if not how else str(base / f'coco_{how}')
        if how:
            _corrupt_coco(coco, root, how)
        paths[f'det_{how or "good"}'] = config = str(base / f'det_{how or "good"}.py')
        with open(config, 'w') as f:
            f.write(DET_TEMPLATE.format(base=DET_CONFIG, root=root + '/'))
        paths[f'coco_{how or "good"}'] = root
    imagenet = str(base / 'imagenet')
    generate_tiny_imagenet(imagenet, TinyImageNetSpec(train_per_class=1, val_per_class=1, image_size=32))
    for how, lines in (('bad_meta', 'circle/00000.png 0\nsquare/00000.png one\n'),
                       ('meta_missing_image', 'circle/00000.png 0\nsquare/00007.png 1\n')):
        root = str(base / f'imagenet_{how}')
        shutil.copytree(imagenet, root)
        os.makedirs(osp.join(root, 'meta'))
        for split in ('train', 'val'):
            with open(osp.join(root, 'meta', f'{split}.txt'), 'w') as f:
                f.write(lines)
        paths[f'cls_{how}'] = config = str(base / f'cls_{how}.py')
        with open(config, 'w') as f:
            f.write(CLS_TEMPLATE.format(base=CLS_CONFIG, root=root + '/'))
        paths[f'imagenet_{how}'] = root
    root = paths['imagenet_garbage'] = str(base / 'imagenet_garbage')  # starts and ends like a PNG, no image inside
    shutil.copytree(imagenet, root)
    with open(osp.join(root, 'train', 'circle', '00000.png'), 'wb') as f:
        f.write(b'\x89PNG\r\n\x1a\n' + bytes(range(256)) * 4 + b'IEND\xaeB`\x82')
    paths['cls_garbage'] = str(base / 'cls_garbage.py')
    with open(paths['cls_garbage'], 'w') as f:
        f.write(CLS_TEMPLATE.format(base=CLS_CONFIG, root=root + '/'))
    good = str(base / 'good.pth')
    torch.save(dict(state_dict=dict(weight=torch.zeros(2)), meta=dict(epoch=1)), good)
    with open(good, 'rb') as f:
        data = f.read()
    with open(str(base / 'truncated.pth'), 'wb') as f:
        f.write(data[:len(data) // 3])
    with open(str(base / 'text.pth'), 'w') as f:
        f.write('not a checkpoint\n')
    with open(str(base / 'a_file'), 'w') as f:
        f.write('a file, not a folder\n')
    paths.update(good_ckpt=good, truncated_ckpt=str(base / 'truncated.pth'), text_ckpt=str(base / 'text.pth'),
                 file=str(base / 'a_file'))
    return paths


def _run(argv: List[str], cwd: str, env: Optional[Dict[str, str]] = None, limit_file_size: int = 0):
    def preexec():
        if limit_file_size:
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit_file_size, limit_file_size))

    full_env = dict(os.environ, **(env or {}))
    full_env.pop('MMLIGHT_TRUSTED_CHECKPOINTS', None)
    return subprocess.run(argv, cwd=cwd, env=full_env, capture_output=True, text=True, timeout=600,
                          preexec_fn=preexec)


def _written(folder: str) -> List[str]:
    return sorted(osp.relpath(osp.join(d, f), folder) for d, _, files in os.walk(folder) for f in files)


def check_case(case: Case, inputs: Dict[str, str], tmp_path, limit_file_size: int = 0) -> List[str]:
    """Run ``case`` in the empty folder ``tmp_path/run``; check status, last line, no traceback, nothing written.
    Returns the stderr lines."""
    cwd = tmp_path / 'run'
    cwd.mkdir()
    argv = [arg.format(**inputs) for arg in case.argv]
    env = {key: value.format(**inputs) for key, value in (case.env or {}).items()}
    result = _run(argv, str(cwd), env, limit_file_size)
    lines = result.stderr.strip().splitlines()
    shown = f'{" ".join(argv)}\n--- stderr:\n{result.stderr[-3000:]}'
    assert result.returncode == case.status, shown
    assert 'Traceback' not in result.stderr + result.stdout, shown
    last = case.last.format(**inputs)
    assert lines and lines[-1].startswith('error: ') and last in lines[-1], shown
    if case.also is not None:
        assert case.also.format(**inputs) in lines[:-1], shown
    assert _written(str(cwd)) == [], shown  # nothing written: no work dir, no output
    return lines


TRAIN = ['{py}', '{tools}/train.py']
TEST = ['{py}', '{tools}/test.py']
CASES = {
    # tools/train.py
    'train: config not found': Case(TRAIN + ['nowhere.py'], 'config nowhere.py not found'),
    'train: malformed annotation JSON': Case(
        TRAIN + ['{det_bad_json}'], 'annotation file {coco_bad_json}/annotations/instances_train2017.json is not '
        'valid JSON: Expecting value at line 1 column 14'),
    'train: annotation names a missing image': Case(
        TRAIN + ['{det_missing_image}'], 'image {coco_missing_image}/train2017/000002.jpg (named in '
        '{coco_missing_image}/annotations/instances_train2017.json) does not exist'),
    'train: truncated image': Case(
        TRAIN + ['{det_truncated}'], 'image {coco_truncated}/train2017/000003.jpg (named in '
        '{coco_truncated}/annotations/instances_train2017.json) is truncated or corrupt'),
    'train: image folder missing': Case(
        TRAIN + ['{det_no_images}'], 'dataset files not found: {coco_no_images}/train2017/'),
    'train: classes that are not categories of the annotation file': Case(
        TRAIN + ['{det_good}', '--cfg-options', "train_dataloader.dataset.metainfo.classes=['circle','hexagon']"],
        "annotation file {coco_good}/annotations/instances_train2017.json has no category named 'hexagon'"),
    'train: ImageNet list with a bad line': Case(
        TRAIN + ['{cls_bad_meta}'], '{imagenet_bad_meta}/meta/train.txt, line 2: expected "<relative path> '
        '<label >= 0>", got \'square/00000.png one\''),
    'train: --resume checkpoint not found': Case(
        TRAIN + ['{det_good}', '--resume', 'missing.pth'], '--resume checkpoint missing.pth not found'),
    'train: --work-dir is a file': Case(
        TRAIN + ['{det_good}', '--work-dir', '{file}'], 'work dir {file} cannot be created (it is a file)'),
    'train: --auto-scale-lr without auto_scale_lr': Case(
        TRAIN + ['{det_good}', '--auto-scale-lr', '--cfg-options', 'auto_scale_lr=None'],
        '--auto-scale-lr: config {det_good} has no auto_scale_lr'),
    # tools/test.py
    'test: checkpoint not found': Case(TEST + ['{det_good}', 'missing.pth'], 'checkpoint missing.pth not found'),
    'test: not a checkpoint': Case(
        TEST + ['{det_good}', '{text_ckpt}'], 'checkpoint {text_ckpt} is not a PyTorch checkpoint'),
    'test: truncated checkpoint': Case(
        TEST + ['{det_good}', '{truncated_ckpt}'],
        'checkpoint {truncated_ckpt} is not a readable PyTorch checkpoint, corrupt or truncated'),
    'test: annotation file not in COCO format': Case(
        TEST + ['{det_not_coco}', '{good_ckpt}'], 'annotation file {coco_not_coco}/annotations/instances_val2017.json '
        'is not in COCO format: the top level is a list'),
    'test: annotation names a file that is not an image': Case(
        TEST + ['{det_not_image}', '{good_ckpt}'], 'image {coco_not_image}/val2017/000001.jpg (named in '
        '{coco_not_image}/annotations/instances_val2017.json) is not an image'),
    'test: ImageNet list names a missing image': Case(
        TEST + ['{cls_meta_missing_image}', '{good_ckpt}'], 'image {imagenet_meta_missing_image}/val/square/'
        '00007.png (named in {imagenet_meta_missing_image}/meta/val.txt) does not exist'),
    'test: --out not a pickle': Case(
        TEST + ['{det_good}', '{good_ckpt}', '--out', 'results.json'], '--out must be a .pkl or .pickle file'),
    # tools/misc/make_demo_dataset.py
    'make_demo_dataset: negative seed': Case(
        ['{py}', '{tools}/misc/make_demo_dataset.py', '--out', 'demo', '--seed', '-1'], '--seed must be >= 0, got -1'),
    'make_demo_dataset: image size too small': Case(
        ['{py}', '{tools}/misc/make_demo_dataset.py', '--out', 'demo', '--image-size', '32'],
        '--image-size must be >= 74 for --kind coco, got 32'),
    'make_demo_dataset: --out is a file': Case(
        ['{py}', '{tools}/misc/make_demo_dataset.py', '--out', '{file}'], '--out {file} is a file'),
    'make_demo_dataset: --out inside a file': Case(
        ['{py}', '{tools}/misc/make_demo_dataset.py', '--out', '{file}/demo'],
        '--out {file}/demo: cannot write the dataset (Not a directory'),
    # tools/model_converters
    'extract_backbone: SRC not found': Case(
        ['{py}', '{tools}/model_converters/extract_backbone.py', 'missing.pth', 'out.pth'],
        'missing.pth: no such file'),
    'dcd_official: SRC not a checkpoint': Case(
        ['{py}', '{tools}/model_converters/dcd_official.py', '{text_ckpt}', 'out.pth'],
        '{text_ckpt}: not a PyTorch checkpoint'),
    'micronet_official: SRC a checkpoint of another model': Case(
        ['{py}', '{tools}/model_converters/micronet_official.py', '{good_ckpt}', 'out.pth'],
        '{good_ckpt}: the keys and shapes fit no MicroNet arch'),
    # shell scripts (their checks run before any python starts)
    'dist_train.sh: no arguments': Case(
        ['bash', '{tools}/dist_train.sh'], 'dist_train.sh needs CONFIG and NUM_PROCESSES, got 0', status=2),
    'dist_train.sh: config not found': Case(
        ['bash', '{tools}/dist_train.sh', 'nowhere.py', '2'], 'config nowhere.py not found'),
    'dist_train.sh: process count not a number': Case(
        ['bash', '{tools}/dist_train.sh', '{det_good}', 'two'], "NUM_PROCESSES must be a whole number >= 1 "
        "(processes on this machine), got 'two'", status=2),
    'dist_train.sh: bad PORT': Case(
        ['bash', '{tools}/dist_train.sh', '{det_good}', '2'], "PORT must be a port number, got '29x'", status=2,
        env=dict(PORT='29x')),
    'dist_test.sh: checkpoint not found': Case(
        ['bash', '{tools}/dist_test.sh', '{det_good}', 'missing.pth', '2'], 'checkpoint missing.pth not found'),
    'dist_test.sh: process count zero': Case(
        ['bash', '{tools}/dist_test.sh', '{det_good}', '{good_ckpt}', '0'],
        "NUM_PROCESSES must be a whole number >= 1 (processes on this machine), got '0'", status=2),
    'slurm_train.sh: too few arguments': Case(
        ['bash', '{tools}/slurm_train.sh', 'partition', 'job'],
        'slurm_train.sh needs PARTITION, JOB_NAME, CONFIG and WORK_DIR, got 2', status=2),
    'slurm_test.sh: GPUS not a number': Case(
        ['bash', '{tools}/slurm_test.sh', 'partition', 'job', '{det_good}', '{good_ckpt}'],
        "GPUS must be a whole number >= 1, got 'eight'", status=2, env=dict(GPUS='eight')),
    'run_demo.sh: an argument': Case(
        ['bash', '{tools}/run_demo.sh', '--fast'], 'run_demo.sh takes no arguments, got: --fast', status=2),
    'run_cls_demo.sh: WORK_DIR is a file': Case(
        ['bash', '{tools}/run_cls_demo.sh'], 'WORK_DIR {file} is a file, expected a folder', status=2,
        env=dict(WORK_DIR='{file}')),
}


@pytest.mark.parametrize('name', list(CASES))
def test_bad_input_is_one_error_line(name, inputs, tmp_path):
    check_case(CASES[name], inputs, tmp_path)


def test_mixed_precision_without_an_accelerator(inputs, tmp_path):
    if torch.cuda.is_available():
        pytest.skip('this machine has a GPU: --amp is valid')
    check_case(Case(TRAIN + ['{det_good}', '--amp'], '--amp: mixed precision needs one of the devices cuda'),
               inputs, tmp_path)


def test_slurm_without_srun(inputs, tmp_path):
    """No srun on PATH: one line before anything starts."""
    path = tmp_path / 'bin'
    path.mkdir()
    for tool in ('bash', 'dirname'):
        os.symlink(shutil.which(tool), path / tool)
    check_case(Case(['bash', '{tools}/slurm_train.sh', 'partition', 'job', '{det_good}', 'work'],
                    'srun not found: tools/slurm_train.sh runs on a slurm cluster', env=dict(PATH=str(path))),
               inputs, tmp_path)


def test_make_demo_dataset_leaves_nothing_when_a_write_fails(inputs, tmp_path):
    """A write that fails midway (here: a 1000-byte file size limit) removes the folders the run created."""
    check_case(Case(['{py}', '{tools}/misc/make_demo_dataset.py', '--out', 'data/demo', '--num-train', '2',
                     '--num-val', '1'], '--out data/demo: cannot write the dataset (File too large'),
               inputs, tmp_path, limit_file_size=1000)


def test_an_image_that_fails_only_when_decoded_during_training(inputs, tmp_path):
    """The image starts and ends like a PNG, so the up-front check passes; the decoder refuses it in the first
    iteration, in a DataLoader worker (the classification demo loads with 2). The run has begun (its log is written),
    but it ends in one line naming the image, before any checkpoint."""
    cwd = tmp_path / 'run'
    cwd.mkdir()
    result = _run([a.format(**inputs) for a in TRAIN + ['{cls_garbage}']], str(cwd))
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1 and 'Traceback' not in result.stderr, result.stderr[-3000:]
    assert lines[-1] == (f'error: image {inputs["imagenet_garbage"]}/train/circle/00000.png cannot be decoded (not '
                         'an image, or a truncated or corrupt file); replace it or remove it from the annotation file')
    assert not [f for f in _written(str(cwd)) if f.endswith('.pth')]


def test_a_conv_cfg_that_fits_no_conv_stops_training(inputs, tmp_path):
    """IGC with secondary_groups=5 fits no conv of a ResNet-50 (no width is a multiple of 5): every layer would be a
    plain-conv fallback and the run would train a plain network. The tool stops after building the model (its log
    is written), before any iteration or checkpoint, with one line naming the config and the layer's reason."""
    cwd = tmp_path / 'run'
    cwd.mkdir()
    argv = TRAIN + ['{det_good}', '--cfg-options', 'model.backbone.conv_cfg.type=IGC',
                    'model.backbone.conv_cfg.secondary_groups=5']
    result = _run([a.format(**inputs) for a in argv], str(cwd))
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1 and 'Traceback' not in result.stderr, result.stderr[-3000:]
    assert lines[-1].startswith('error: ') and 'IGC layers are plain-conv fallbacks' in lines[-1], lines[-1]
    assert not [f for f in _written(str(cwd)) if f.endswith('.pth')]


def test_a_process_that_fails_under_torchrun_ends_in_one_line(inputs, tmp_path):
    """dist_test.sh with a file that is not a checkpoint: each process prints its error line, and the launch ends
    in one line naming the failed process instead of torchrun's traceback."""
    lines = check_case(Case(['bash', '{tools}/dist_test.sh', '{det_good}', '{text_ckpt}', '2'],
                            'tools/test.py stopped in process', env=dict(PORT=str(29500 + os.getpid() % 1000))),
                       inputs, tmp_path)
    assert f'error: checkpoint {inputs["text_ckpt"]} is not a PyTorch checkpoint (neither the zip format of ' \
        'torch.save nor a pickle)' in lines


def test_tool_error_lines_are_written_whole_when_python_is_unbuffered():
    """Two processes of a launch that fail at once must not print ``error: ...error: ...`` on one line: with
    PYTHONUNBUFFERED=1 Python writes sys.exit's message and its newline separately unless the tools make stderr
    write whole lines. A write made between the message and its newline shows which happened."""
    code = ('import os, sys; from mmlight.utils.tools import whole_line_stderr; whole_line_stderr(); '
            'sys.stderr.write("error: one line"); os.write(2, b"<other process>"); sys.stderr.write("\\n"); '
            'os.write(2, b"<after>")')
    result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, cwd=REPO,
                            env=dict(os.environ, PYTHONUNBUFFERED='1'))
    # the line waits for its end (one write), and goes out as soon as it ends
    assert result.stderr == '<other process>error: one line\n<after>', result.stderr


# get_flops.py is rewritten separately; these cases state what it must reject (one line, exit status 1 or 2 for
# an argument).
GET_FLOPS = ['{py}', '{tools}/analysis/get_flops.py']
GET_FLOPS_CASES = {
    'get_flops: config not found': Case(GET_FLOPS + ['nowhere.py'], 'config nowhere.py not found'),
    'get_flops: --shape not positive': Case(GET_FLOPS + ['{det_config}', '--shape', '0', '10'], '--shape'),
    'get_flops: --shape with three sizes': Case(GET_FLOPS + ['{det_config}', '--shape', '1', '2', '3'], '--shape'),
    'get_flops: --shape not a number': Case(GET_FLOPS + ['{det_config}', '--shape', 'big'], '--shape'),
    'get_flops: a model that cannot be built': Case(
        GET_FLOPS + ['{det_config}', '--cfg-options', 'model.backbone.depth=7'], 'the model cannot be built'),
}


@pytest.mark.parametrize('name', list(GET_FLOPS_CASES))
def test_get_flops_bad_input_is_one_error_line(name, inputs, tmp_path):
    case = GET_FLOPS_CASES[name]
    cwd = tmp_path / 'run'
    cwd.mkdir()
    result = _run([arg.format(**inputs) for arg in case.argv], str(cwd))
    lines = result.stderr.strip().splitlines()
    assert result.returncode in (1, 2) and 'Traceback' not in result.stderr, result.stderr[-3000:]
    assert lines and lines[-1].startswith('error: ') and case.last.format(**inputs) in lines[-1], lines[-1:]
    assert _written(str(cwd)) == []
