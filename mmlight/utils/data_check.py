"""Fail early, in one line naming the file, when a config's dataset files or checkpoints are missing or malformed.

The tools run these checks before the Runner is built, so a bad input stops them before anything is written:

* :func:`check_dataset_files`: every annotation file and image folder the config names exists;
* :func:`check_dataset_contents`: every annotation file parses (COCO JSON: its structure and the config's classes;
  ImageNet lists: the dataset's own reader), and every image it names exists and starts like an image (one open and
  two short reads per image; see :func:`check_image_files`);
* :func:`check_checkpoint_file`: a checkpoint named on the command line or by ``load_from`` loads and holds a state
  dict;
* :func:`check_backbone_init`: the backbone's ``Pretrained`` checkpoint exists (and torchvision, where it names
  ``torchvision://`` weights).

An image that still fails while the run reads it (corrupt in a way only a full decode shows) is turned into one
line by :func:`loading_error_line`, which the tools install with :func:`install_loading_error_hook`.
"""
import json
import os
import os.path as osp
import re
import sys
import traceback
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

from mmengine.config import Config

COCO_HINT = ('COCO is expected at data/coco in the standard layout (annotations/instances_{train,val}2017.json, '
             'train2017/, val2017/); elsewhere, set the dataset\'s data_root with --cfg-options (e.g. '
             'train_dataloader.dataset.data_root=DIR/). To try mmlight without COCO: `bash tools/run_demo.sh` '
             '(a small generated COCO-format dataset in data/demo_coco)')
IMAGENET_HINT = ('ImageNet is expected at data/imagenet as class folders (train/<wnid>/*.JPEG, val/<wnid>/*.JPEG) '
                 'or with meta/train.txt and meta/val.txt; elsewhere, set train_dataloader.dataset.data_root (and '
                 'the val/test ones) with --cfg-options. To try the classification path without ImageNet: '
                 '`bash tools/run_cls_demo.sh` (a generated 10-class set in data/demo_imagenet)')
#: Keys COCO-format files must hold, as mmdet's ``CocoDataset`` and pycocotools read them.
COCO_IMAGE_KEYS = ('id', 'file_name', 'width', 'height')
COCO_ANNOTATION_KEYS = ('id', 'image_id', 'category_id', 'bbox', 'area')
COCO_CATEGORY_KEYS = ('id', 'name')
#: Images are checked by this many threads (the reads wait on the disk, not on Python).
IMAGE_CHECK_THREADS = 8

# How each image format cv2 reads begins; JPEG and PNG also have a fixed end, which finds truncated files.
_SIGNATURES = ((b'\xff\xd8\xff', 'jpeg'), (b'\x89PNG\r\n\x1a\n', 'png'), (b'BM', 'bmp'), (b'II*\x00', 'tiff'),
               (b'MM\x00*', 'tiff'), (b'GIF8', 'gif'), (b'\x00\x00\x00\x0cjP  ', 'jpeg2000'),
               (b'\xffO\xffQ', 'jpeg2000'), (b'v/1\x01', 'exr'), (b'#?RADIANCE', 'hdr'), (b'#?RGBE', 'hdr'),
               (b'Y\xa6j\x95', 'sunraster'))
_ENDINGS = {'jpeg': b'\xff\xd9', 'png': b'IEND\xaeB`\x82'}


class DataFileError(ValueError):
    """An annotation file, image or checkpoint is malformed; the message is one line that names the file."""


def _one_line(text: Any, limit: int = 200) -> str:
    text = ' '.join(str(text).split())
    return text if len(text) <= limit else text[:limit - 3] + '...'


def _innermost(dataset_cfg):
    while 'dataset' in dataset_cfg and 'ann_file' not in dataset_cfg and 'split' not in dataset_cfg:
        dataset_cfg = dataset_cfg['dataset']
    return dataset_cfg


def _leaf_datasets(dataset_cfg) -> Iterator[dict]:
    """The datasets a dataset config reads, through wrappers (``RepeatDataset``'s ``dataset``, ``ConcatDataset``'s
    ``datasets``)."""
    if isinstance(dataset_cfg, dict) and isinstance(dataset_cfg.get('datasets'), (list, tuple)):
        for child in dataset_cfg['datasets']:
            yield from _leaf_datasets(child)
    elif isinstance(dataset_cfg, dict):
        yield _innermost(dataset_cfg)


def _is_remote(dataset_cfg) -> bool:
    return bool((dataset_cfg.get('backend_args') or {}).get('backend'))


def _join(root: str, path: str) -> str:
    return path if not root or osp.isabs(path) else osp.join(root, path)


def _dataset_files(dataset_cfg) -> Iterable[str]:
    """Annotation file and image folder of a dataset config (wrappers such as RepeatDataset are unwrapped)."""
    dataset_cfg = _innermost(dataset_cfg)
    root = dataset_cfg.get('data_root', '') or ''
    if dataset_cfg.get('type') == 'ImageNet':
        from ..datasets.imagenet import ImageNet
        yield from ImageNet.expected_paths(root or 'data/imagenet', dataset_cfg.get('split', 'train'),
                                           dataset_cfg.get('ann_file') or '', dataset_cfg.get('data_prefix') or '')
        return
    ann_file = dataset_cfg.get('ann_file')
    if ann_file:
        yield _join(root, ann_file)
    image_dir = (dataset_cfg.get('data_prefix') or {}).get('img')
    if image_dir:
        yield _join(root, image_dir)


def _evaluator_ann_files(cfg: Config, evaluators: Iterable[str]) -> Iterator[str]:
    """The local ``ann_file`` of each evaluator (a dict or a list of them) named in ``evaluators``."""
    for name in evaluators:
        metrics = cfg.get(name) or []
        for metric in metrics if isinstance(metrics, (list, tuple)) else [metrics]:
            ann_file = metric.get('ann_file') if isinstance(metric, dict) else None
            if ann_file and not (metric.get('backend_args') or {}).get('backend') and '://' not in ann_file:
                yield ann_file


def check_dataset_files(cfg: Config, loaders: Iterable[str], evaluators: Iterable[str] = ()) -> None:
    """Raise ``FileNotFoundError`` (one line) naming every missing dataset file of ``cfg``'s ``loaders`` and the
    ``ann_file`` of its ``evaluators`` (e.g. ``'val_evaluator'``).

    Only local paths are checked (a ``backend_args`` for remote storage skips the check).
    """
    missing, hint = [], COCO_HINT
    for name in loaders:
        loader = cfg.get(name)
        if not loader:
            continue
        for dataset in _leaf_datasets(loader['dataset']):
            if _is_remote(dataset):
                continue
            if dataset.get('type') == 'ImageNet':
                hint = IMAGENET_HINT
            missing += [path for path in _dataset_files(dataset) if not osp.exists(path)]
    missing += [path for path in _evaluator_ann_files(cfg, evaluators) if not osp.exists(path)]
    if missing:
        raise FileNotFoundError(f'dataset files not found: {", ".join(dict.fromkeys(missing))}. {hint}')


# ------------------------------------------------------------------------------------------------ annotation files
def load_json_file(path: str, what: str = 'annotation file') -> Any:
    """``json.load`` of ``path``; a file that cannot be read or parsed is a :class:`DataFileError` naming it."""
    try:
        with open(path, 'rb') as f:
            data = f.read()
    except OSError as error:
        raise DataFileError(f'{what} {path} cannot be read ({error.strerror or error})') from None
    if not data.strip():
        raise DataFileError(f'{what} {path} is empty, expected JSON')
    try:
        return json.loads(data)
    except json.JSONDecodeError as error:
        raise DataFileError(f'{what} {path} is not valid JSON: {error.msg} at line {error.lineno} column '
                            f'{error.colno}') from None
    except UnicodeDecodeError as error:
        raise DataFileError(f'{what} {path} is not valid JSON: not UTF-8 text (byte {error.start})') from None


def _check_records(path: str, data: dict, section: str, keys: Sequence[str], required: bool = True) -> list:
    """``data[section]`` as a list of objects that all hold ``keys``; else a :class:`DataFileError`."""
    if section not in data:
        if not required:
            return []
        raise DataFileError(f'annotation file {path} is not in COCO format: it has no "{section}" list (found keys: '
                            f'{_one_line(", ".join(map(str, data)), 120) or "none"})')
    records = data[section]
    if not isinstance(records, list):
        raise DataFileError(f'annotation file {path} is not in COCO format: "{section}" is a '
                            f'{type(records).__name__}, expected a list')
    for index, record in enumerate(records):
        if not isinstance(record, dict):
            raise DataFileError(f'annotation file {path} is not in COCO format: {section}[{index}] is a '
                                f'{type(record).__name__}, expected an object')
        for key in keys:
            if key not in record:
                raise DataFileError(f'annotation file {path} is not in COCO format: {section}[{index}] has no '
                                    f'"{key}" (each entry of "{section}" needs {", ".join(keys)})')
    return records


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_coco_annotations(path: str, classes: Optional[Sequence[str]] = None, data: Any = None) -> List[str]:
    """Check a COCO-format annotation file as mmdet's ``CocoDataset`` reads it; return its images' file names.

    The file must parse as JSON and hold ``images`` (each with ``id``, ``file_name``, ``width``, ``height``),
    ``categories`` (``id``, ``name``) and, when present, ``annotations`` (``id``, ``image_id``, ``category_id``,
    ``bbox`` as four numbers, ``area``) with unique ids. ``classes`` (the config's ``metainfo.classes``) must all be
    category names: mmdet drops the others silently and numbers the rest, so a missing one shifts every label after
    it. ``data`` is the already parsed file, if any.

    Raises:
        DataFileError: the first problem, in one line naming the file and the entry.
    """
    data = load_json_file(path) if data is None else data
    if not isinstance(data, dict):
        raise DataFileError(f'annotation file {path} is not in COCO format: the top level is a '
                            f'{type(data).__name__}, expected an object with "images", "annotations", "categories"')
    images = _check_records(path, data, 'images', COCO_IMAGE_KEYS)
    categories = _check_records(path, data, 'categories', COCO_CATEGORY_KEYS)
    annotations = _check_records(path, data, 'annotations', COCO_ANNOTATION_KEYS, required=False)
    for index, image in enumerate(images):
        if not isinstance(image['file_name'], str) or not image['file_name']:
            raise DataFileError(f'annotation file {path}: images[{index}]["file_name"] is '
                                f'{_one_line(repr(image["file_name"]), 80)}, expected a file name')
    seen = set()
    for index, annotation in enumerate(annotations):
        bbox = annotation['bbox']
        if not isinstance(bbox, list) or len(bbox) != 4 or not all(map(_is_number, bbox)):
            raise DataFileError(f'annotation file {path}: annotations[{index}]["bbox"] is '
                                f'{_one_line(repr(bbox), 80)}, expected [x, y, width, height]')
        if not _is_number(annotation['area']):
            raise DataFileError(f'annotation file {path}: annotations[{index}]["area"] is '
                                f'{_one_line(repr(annotation["area"]), 80)}, expected a number')
        if annotation['id'] in seen:
            raise DataFileError(f'annotation file {path}: annotations[{index}] repeats the annotation id '
                                f'{annotation["id"]!r} (ids must be unique)')
        seen.add(annotation['id'])
    if classes is not None:
        names = [category['name'] for category in categories]
        absent = [name for name in classes if name not in names]
        if absent:
            raise DataFileError(f'annotation file {path} has no category named {", ".join(map(repr, absent))} '
                                f'(its categories: {_one_line(", ".join(map(str, names)), 160) or "none"}); the '
                                "config's metainfo classes must be category names of the file")
    return [image['file_name'] for image in images]


# ------------------------------------------------------------------------------------------------ images
def _image_kind(head: bytes) -> Optional[str]:
    for signature, kind in _SIGNATURES:
        if head.startswith(signature):
            return kind
    if head[:4] == b'RIFF' and head[8:12] == b'WEBP':
        return 'webp'
    if len(head) > 1 and head[:1] == b'P' and head[1:2] in b'1234567fF':
        return 'pnm'
    return None


def _decodes(path: str, backend: Optional[str]) -> bool:
    """Whether mmcv decodes the file (as ``LoadImageFromFile`` does, with the same backend)."""
    import mmcv
    try:
        with open(path, 'rb') as f:
            return mmcv.imfrombytes(f.read(), backend=backend) is not None
    except Exception:
        return False


def image_file_problem(path: str, backend: Optional[str] = 'cv2') -> Optional[str]:
    """Why ``path`` cannot be loaded as an image (``'does not exist'``, ``'is empty'``...), or ``None``.

    One open and two 16-byte reads: the file must begin like an image format and, for JPEG and PNG, end with the
    format's end marker. Only a file that fails that is decoded (with mmcv and ``backend``, as the training
    pipeline does), so that an image with bytes after its end marker, or of a format not listed, still passes when
    it decodes.
    """
    try:
        with open(path, 'rb') as f:
            head = f.read(16)
            size = f.seek(0, os.SEEK_END)
            f.seek(max(0, size - 16))
            tail = f.read(16)
    except FileNotFoundError:
        return 'does not exist'
    except IsADirectoryError:
        return 'is a directory, not an image'
    except OSError as error:
        return f'cannot be read ({error.strerror or error})'
    if not head:
        return 'is empty'
    kind = _image_kind(head)
    if kind is not None and tail.endswith(_ENDINGS.get(kind, b'')):
        return None
    if _decodes(path, backend):
        return None
    if kind is None:
        return f'is not an image (it starts with {head[:8]!r} and does not decode)'
    return f'is truncated or corrupt (a {kind.upper()} file without its end marker that does not decode)'


def check_image_files(paths: Sequence[str], named_by: str = '', backend: Optional[str] = 'cv2',
                      threads: int = IMAGE_CHECK_THREADS) -> None:
    """Raise :class:`DataFileError` (one line: the first bad image, why, and how many more) if any of ``paths``
    cannot be loaded as an image (:func:`image_file_problem`). ``named_by`` is the annotation file or folder the
    paths come from."""
    if not paths:
        return
    if threads > 1 and len(paths) > 64:
        with ThreadPoolExecutor(threads) as pool:
            problems = list(pool.map(image_file_problem, paths, [backend] * len(paths), chunksize=256))
    else:
        problems = [image_file_problem(path, backend) for path in paths]
    bad = [(path, problem) for path, problem in zip(paths, problems) if problem is not None]
    if bad:
        path, problem = bad[0]
        where = f' (named in {named_by})' if named_by else ''
        more = f'; {len(bad) - 1} more of its {len(paths)} images cannot be loaded either' if len(bad) > 1 else ''
        raise DataFileError(f'image {path}{where} {problem}{more}')


def _decode_backend(dataset_cfg) -> Optional[str]:
    """The ``imdecode_backend`` of the dataset pipeline's ``LoadImageFromFile`` (mmcv's default: cv2)."""
    for step in dataset_cfg.get('pipeline') or []:
        if isinstance(step, dict) and step.get('type') == 'LoadImageFromFile':
            return step.get('imdecode_backend', 'cv2')
    return 'cv2'


def _dataset_class(dataset_cfg):
    kind = dataset_cfg.get('type')
    if isinstance(kind, type):
        return kind
    from mmdet.registry import DATASETS
    try:
        return DATASETS.get(kind) if isinstance(kind, str) else None
    except KeyError:
        return None


def _reads_like_coco(dataset_class: type) -> bool:
    """``CocoDataset`` or a subclass that reads its files as ``CocoDataset`` does (LVIS and Objects365 do not)."""
    from mmdet.datasets import CocoDataset
    return (issubclass(dataset_class, CocoDataset) and dataset_class.load_data_list is CocoDataset.load_data_list
            and dataset_class.parse_data_info is CocoDataset.parse_data_info)


def _coco_images(dataset_cfg, parsed: Dict[str, Any]) -> Tuple[str, List[str]]:
    """The annotation file of a COCO-format dataset config and the image paths it names, after checking it."""
    root = dataset_cfg.get('data_root', '') or ''
    ann_file = _join(root, dataset_cfg['ann_file'])
    prefix = (dataset_cfg.get('data_prefix') or {}).get('img', '') or ''
    image_dir = _join(root, prefix) if prefix else ''  # as mmdet: no prefix, file names relative to the cwd
    classes = (dataset_cfg.get('metainfo') or {}).get('classes')
    if classes is None:
        classes = _dataset_class(dataset_cfg).METAINFO.get('classes')
    key = osp.realpath(ann_file)
    if key not in parsed:
        parsed[key] = load_json_file(ann_file)
    names = check_coco_annotations(ann_file, classes, data=parsed[key])
    return ann_file, [osp.join(image_dir, name) for name in names]


def _imagenet_images(dataset_cfg, dataset_class) -> Tuple[str, List[str]]:
    """The annotation file (or image folder) of an ImageNet-style dataset config and its image paths, read by the
    dataset's own reader."""
    kwargs = {k: v for k, v in dataset_cfg.items() if k not in ('type', '_scope_')}
    kwargs.update(pipeline=[], lazy_init=True)
    try:
        dataset = dataset_class(**kwargs)
        items = dataset.load_data_list()
    except UnicodeDecodeError as error:
        raise DataFileError(f'annotation file {dataset_cfg.get("ann_file") or "meta/<split>.txt"} under '
                            f'{dataset_cfg.get("data_root")} is not UTF-8 text (byte {error.start})') from None
    except (ValueError, OSError) as error:
        raise DataFileError(_one_line(error, 400)) from None
    return dataset.ann_file or dataset.image_dir, [item['img_path'] for item in items]


def check_dataset_contents(cfg: Config, loaders: Iterable[str], evaluators: Iterable[str] = (),
                           images: bool = True) -> None:
    """Check what :func:`check_dataset_files` found present: every annotation file of the ``loaders``' datasets
    parses and has the structure the dataset reads, the ``evaluators``' annotation files parse as COCO files, and
    (``images=True``) every image the datasets name loads (:func:`check_image_files`).

    COCO-format datasets (mmdet's ``CocoDataset`` and the subclasses that read files as it does) are parsed here;
    ImageNet-style datasets are read by their own reader; other dataset types and remote storage are left to the
    Runner. An annotation file
    named twice (a val dataset and its evaluator) is parsed once.

    Raises:
        DataFileError: the first problem, in one line naming the file.
    """
    from ..datasets.imagenet import ImageNet
    parsed: Dict[str, Any] = {}
    checked = set()
    for name in loaders:
        loader = cfg.get(name)
        if not loader:
            continue
        for dataset in _leaf_datasets(loader['dataset']):
            dataset_class = _dataset_class(dataset)
            if _is_remote(dataset) or not isinstance(dataset_class, type):
                continue
            if _reads_like_coco(dataset_class) and str(dataset.get('ann_file', '')).endswith('.json'):
                source, paths = _coco_images(dataset, parsed)
            elif issubclass(dataset_class, ImageNet):
                source, paths = _imagenet_images(dataset, dataset_class)
            else:
                continue
            if images and (source, len(paths)) not in checked:
                checked.add((source, len(paths)))
                check_image_files(paths, source, _decode_backend(dataset))
    for ann_file in _evaluator_ann_files(cfg, evaluators):
        key = osp.realpath(ann_file)
        if key not in parsed:
            parsed[key] = load_json_file(ann_file)
            check_coco_annotations(ann_file, data=parsed[key])


# ------------------------------------------------------------------------------------------------ during the run
_FAILED_TO_LOAD = re.compile(r'failed to load image: (.+)$', re.MULTILINE)
_NO_SUCH_FILE = re.compile(r"No such file or directory: '(.+)'")
_LOADING_MODULE = osp.join('mmcv', 'transforms', 'loading.py')


def loading_error_line(error: BaseException) -> Optional[str]:
    """The one line (without ``error: ``) for an image that mmcv's ``LoadImageFromFile`` failed to load during a
    run, also when a DataLoader worker raised it; ``None`` for any other error.

    mmcv asserts ``failed to load image: <path>`` when the decoder returns nothing (not an image, truncated or
    corrupt), and raises ``FileNotFoundError`` / ``OSError`` when the file cannot be read.
    """
    text = str(error)
    if isinstance(error, AssertionError):
        found = _FAILED_TO_LOAD.findall(text)
        if found:
            return (f'image {found[-1].strip()} cannot be decoded (not an image, or a truncated or corrupt file); '
                    'replace it or remove it from the annotation file')
        return None
    if not isinstance(error, OSError):
        return None
    frames = traceback.extract_tb(error.__traceback__) if error.__traceback__ is not None else []
    if _LOADING_MODULE not in text and not any(frame.filename.endswith(_LOADING_MODULE) for frame in frames):
        return None
    path = error.filename or next(iter(_NO_SUCH_FILE.findall(text)[-1:]), None)
    if path is None:
        return None
    if isinstance(error, FileNotFoundError) or _NO_SUCH_FILE.search(text):
        return f'image {path} does not exist; restore it or remove it from the annotation file'
    return f'image {path} cannot be read ({error.strerror or _one_line(text.splitlines()[-1])})'


def install_loading_error_hook() -> None:
    """End the tool with ``error: <one line>`` (exit status 1) instead of a traceback when an image fails to load
    during the run (:func:`loading_error_line`); every other uncaught error keeps Python's traceback."""
    previous = sys.excepthook

    def hook(kind, error, trace):
        line = loading_error_line(error)
        if line is None:
            previous(kind, error, trace)
        else:
            print(f'error: {line}', file=sys.stderr, flush=True)

    sys.excepthook = hook


# ------------------------------------------------------------------------------------------------ work dir, checkpoints
def check_work_dir(path: str) -> None:
    """Raise :class:`DataFileError` if the work dir ``path`` cannot be a directory: it, or the first of its parents
    that exists, is a file."""
    path = osp.abspath(osp.expanduser(path))
    existing = path
    while not osp.exists(existing) and osp.dirname(existing) != existing:
        existing = osp.dirname(existing)
    if not osp.isdir(existing):
        what = 'it is a file' if existing == path else f'{existing} is a file'
        raise DataFileError(f'work dir {path} cannot be created ({what}); give --work-dir a folder')


def check_checkpoint_file(path: str, what: str = 'checkpoint') -> None:
    """Stop before the Runner is built if ``path`` (a local checkpoint the run will load) is missing or is no
    checkpoint: it must load with mmlight's safe loader and hold a state dict (itself, or under ``'state_dict'``).

    URLs and ``scheme://`` paths are left to mmengine. ``what`` names the file in the message (``'--resume
    checkpoint'``...).

    Raises:
        DataFileError: missing, a directory, not a PyTorch checkpoint, corrupt, or without a state dict.
        UnsafeCheckpointError: it needs types outside the safe allow-list (the message says how to opt in).
    """
    if '://' in path:
        return
    full = osp.expanduser(path)
    if not osp.exists(full):
        raise DataFileError(f'{what} {path} not found')
    if not osp.isfile(full):
        raise DataFileError(f'{what} {path} is a directory, expected a checkpoint file (.pth)')
    try:
        with open(full, 'rb') as f:
            head = f.read(4)
    except OSError as error:
        raise DataFileError(f'{what} {path} cannot be read ({error.strerror or error})') from None
    if not (head.startswith(b'PK') or head[:1] == b'\x80'):
        raise DataFileError(f'{what} {path} is not a PyTorch checkpoint (neither the zip format of torch.save nor '
                            'a pickle)')
    from .checkpoint import UnsafeCheckpointError, load_local_checkpoint
    from .converters import ConverterError, state_dict_in
    try:
        checkpoint = load_local_checkpoint(full, map_location='cpu')
    except UnsafeCheckpointError:
        raise
    except Exception as error:  # torch's readers raise RuntimeError, EOFError, UnpicklingError... on a bad file
        reason = _one_line(str(error).split('. ', 1)[0].rstrip('.'), 160)
        raise DataFileError(f'{what} {path} is not a readable PyTorch checkpoint, corrupt or truncated '
                            f'({type(error).__name__}: {reason})') from None
    try:
        state_dict_in(checkpoint, path)
    except ConverterError as error:
        raise DataFileError(f'{what} {error}') from None


# ------------------------------------------------------------------------------------------------ backbone init
def _backbone_checkpoint(cfg: Config) -> str:
    init_cfg = cfg.get('model', {}).get('backbone', {}).get('init_cfg') or {}
    if isinstance(init_cfg, dict) and init_cfg.get('type') == 'Pretrained':
        return str(init_cfg.get('checkpoint', ''))
    return ''


def check_backbone_init(cfg: Config) -> None:
    """Stop before building anything if the backbone's ``Pretrained`` checkpoint cannot be loaded.

    * a local file that does not exist: ``FileNotFoundError`` (one line) naming it, with the config's
      ``backbone_init_help`` (the commands that produce the file) when the config has one;
    * ``torchvision://`` weights without torchvision: see :func:`check_torchvision_init`.

    Without this check mmengine would only warn at ``init_weights`` time, and train from a randomly initialised
    backbone.
    """
    check_torchvision_init(cfg)
    checkpoint = _backbone_checkpoint(cfg)
    if not checkpoint or '://' in checkpoint or osp.isfile(osp.expanduser(checkpoint)):
        return
    how = cfg.get('backbone_init_help')
    raise FileNotFoundError(
        f'the backbone is initialised from {checkpoint} (model.backbone.init_cfg), which does not exist. '
        + (f'Produce it with `{how}`, or' if how else 'Or')
        + ' train the backbone from scratch: --cfg-options model.backbone.init_cfg=None '
        'model.backbone.frozen_stages=-1 model.backbone.norm_eval=False')


def check_torchvision_init(cfg: Config) -> None:
    """Raise ``ModuleNotFoundError`` early if the backbone starts from ``torchvision://`` weights without torchvision.

    mmengine resolves ``torchvision://`` names by importing torchvision; without it the run would fail only after
    the model and the data are built. There is no CPU torchvision wheel for torch 2.13.
    """
    checkpoint = _backbone_checkpoint(cfg)
    if not checkpoint.startswith('torchvision://'):
        return
    try:
        import torchvision  # noqa: F401
    except ImportError:
        raise ModuleNotFoundError(
            f'the backbone is initialised from {checkpoint}, which needs torchvision (not installed). Install a '
            'torchvision matching your torch, or train without it: --cfg-options model.backbone.init_cfg=None '
            '(see docs/get_started.md, backbone initialisation)') from None


def check_backbone_checkpoint_keys(model, cfg: Config, limit: int = 20) -> None:
    """Raise ``ValueError`` if the backbone's ``Pretrained`` checkpoint does not fit the built backbone.

    mmengine's ``PretrainedInit`` loads with ``strict=False`` and only logs the mismatch, so a checkpoint of
    another architecture (torchvision's ResNet-50 into a CompConv128 ResNet-50, a classifier of another width)
    would leave part of the backbone at its random initialisation and train on. This compares the keys (with the
    config's ``prefix``) and shapes with ``model.backbone``'s state dict before training starts and names every
    missing key, unexpected key and shape mismatch (up to ``limit`` of each). ``torchvision://``/URL checkpoints
    and files that do not exist (see :func:`check_backbone_init`) are not opened.
    """
    init_cfg = cfg.get('model', {}).get('backbone', {}).get('init_cfg') or {}
    checkpoint = _backbone_checkpoint(cfg)
    if not checkpoint or '://' in checkpoint or not osp.isfile(osp.expanduser(checkpoint)):
        return
    from mmengine.runner.checkpoint import _load_checkpoint, _load_checkpoint_with_prefix

    from .checkpoint import state_dict_of
    prefix = init_cfg.get('prefix')
    if prefix:
        state = state_dict_of(_load_checkpoint_with_prefix(prefix, checkpoint, map_location='cpu'))
    else:
        state = state_dict_of(_load_checkpoint(checkpoint, map_location='cpu'))
    backbone = getattr(model, 'module', model).backbone
    expected = backbone.state_dict()
    from ..models.swap import dense_start_keys
    dense_start = dense_start_keys(backbone)  # a swapped layer's own parts, which a dense checkpoint lacks
    missing = [k for k in expected if k not in state and k not in dense_start]
    unexpected = [k for k in state if k not in expected]
    mismatched = [f'{k}: checkpoint {tuple(state[k].shape)} vs backbone {tuple(v.shape)}'
                  for k, v in expected.items() if k in state and tuple(state[k].shape) != tuple(v.shape)]
    if not (missing or unexpected or mismatched):
        return

    def listing(title, keys):
        if not keys:
            return ''
        more = f'\n    ... and {len(keys) - limit} more' if len(keys) > limit else ''
        return f'\n  {title} ({len(keys)}):\n    ' + '\n    '.join(keys[:limit]) + more

    how = cfg.get('backbone_init_help')
    raise ValueError(
        f'the backbone checkpoint {checkpoint} (model.backbone.init_cfg, prefix {prefix!r}) does not fit '
        f'{type(backbone).__name__}: training would start from a partly random backbone.'
        + listing('missing in the checkpoint', missing) + listing('not in the backbone', unexpected)
        + listing('shape mismatches', mismatched)
        + (f'\nThe checkpoint this config expects is made by:\n  {how}' if how else '')
        + '\nOr train the backbone from scratch: --cfg-options model.backbone.init_cfg=None '
        'model.backbone.frozen_stages=-1 model.backbone.norm_eval=False')
