"""ImageNet-style classification dataset (registered in mmdet's ``DATASETS``), without mmpretrain."""
import os
import os.path as osp
from typing import List, Optional, Sequence, Union

from mmdet.registry import DATASETS
from mmengine.dataset import BaseDataset

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.ppm', '.bmp', '.pgm', '.tif', '.tiff', '.webp')
SPLITS = ('train', 'val', 'test')
LAYOUTS = ('<data_root>/<split>/<class name>/<image> (class folders), or <data_root>/meta/<split>.txt with lines '
           '"<path relative to data_root/<split>> <integer label>"')


@DATASETS.register_module()
class ImageNet(BaseDataset):
    """ImageNet in either of its standard layouts (those mmpretrain's ``ImageNet`` reads).

    * **annotation file**: ``ann_file`` (default ``meta/<split>.txt`` under ``data_root``, used when it exists)
      holds one ``<relative image path> <label>`` per line, paths relative to the image folder;
    * **class folders**: ``<image folder>/<class>/<image>``; classes are the folder names in sorted order (ImageNet's
      ``n01440764`` ... order), labels their positions.

    The image folder is ``data_root/data_prefix`` (default ``data_root/<split>``). Each item is
    ``dict(img_path=..., gt_label=int)`` for mmcv's ``LoadImageFromFile`` and :class:`PackClsInputs`.

    Args:
        data_root (str): Dataset root. Default: ``'data/imagenet'``.
        split (str): ``'train'``, ``'val'`` or ``'test'``. Default: ``'train'``.
        ann_file (str): Annotation file, relative to ``data_root`` unless absolute; ``''`` = ``meta/<split>.txt`` if
            present, else the class-folder layout. Default: ``''``.
        data_prefix (str): Image folder relative to ``data_root``; ``''`` = ``split``. Default: ``''``.
        classes (Sequence[str], optional): Class names. With class folders they must be the folders' names (the
            order given fixes the labels); with an annotation file they name the labels. Default: None.
        pipeline (Sequence[dict]): Transforms. Default: ``()``.
        **kwargs: Other arguments of mmengine's ``BaseDataset`` (``indices``, ``test_mode``, ``lazy_init``...).

    Raises:
        ValueError: ``split`` not one of ``train``, ``val``, ``test``; an annotation line that is not
            ``<path> <int>``; ``classes`` that do not match the folders.
        FileNotFoundError: the image folder or the annotation file does not exist, or holds no image.
    """

    def __init__(self,
                 data_root: str = 'data/imagenet',
                 split: str = 'train',
                 ann_file: str = '',
                 data_prefix: Union[str, dict] = '',
                 classes: Optional[Sequence[str]] = None,
                 pipeline: Sequence = (),
                 **kwargs) -> None:
        if split not in SPLITS:
            raise ValueError(f'split must be one of {SPLITS}, got {split!r}')
        self.split = split
        self.image_dir = self.expected_paths(data_root, split, '', data_prefix)[0]
        default_ann = osp.join(data_root, 'meta', f'{split}.txt')
        if ann_file:
            ann_file = ann_file if osp.isabs(ann_file) else osp.join(data_root, ann_file)
            if not osp.isfile(ann_file):
                raise FileNotFoundError(f'ImageNet ann_file {ann_file} does not exist; layouts read: {LAYOUTS}')
        elif osp.isfile(default_ann):
            ann_file = default_ann
        self._class_names = list(classes) if classes is not None else None
        metainfo = dict(classes=tuple(classes)) if classes is not None else None
        super().__init__(ann_file=ann_file, metainfo=metainfo, data_root='', data_prefix=dict(img_path=''),
                         pipeline=list(pipeline), **kwargs)

    @staticmethod
    def expected_paths(data_root: str = 'data/imagenet', split: str = 'train', ann_file: str = '',
                       data_prefix: Union[str, dict] = '') -> List[str]:
        """The image folder (and the annotation file, if named) the dataset reads; ``data_prefix`` may also be
        mmengine's ``dict(img_path=...)`` form. Used by the dataset and by the tools' early checks."""
        if isinstance(data_prefix, dict):
            data_prefix = data_prefix.get('img_path', '') or data_prefix.get('img', '')
        paths = [osp.join(data_root, data_prefix or split)]
        if ann_file:
            paths.append(ann_file if osp.isabs(ann_file) else osp.join(data_root, ann_file))
        return paths

    def load_data_list(self) -> List[dict]:
        if not osp.isdir(self.image_dir):
            raise FileNotFoundError(f'ImageNet image folder {self.image_dir} does not exist; layouts read: {LAYOUTS}')
        items = self._from_ann_file() if self.ann_file else self._from_folders()
        if not items:
            raise FileNotFoundError(f'no images found for split {self.split!r} under {self.image_dir}; '
                                    f'layouts read: {LAYOUTS}')
        return items

    def _from_ann_file(self) -> List[dict]:
        items = []
        with open(self.ann_file) as f:
            for number, line in enumerate(f, 1):
                if not line.strip():
                    continue
                parts = line.rsplit(maxsplit=1)
                if len(parts) != 2 or not parts[1].lstrip('-').isdigit() or int(parts[1]) < 0:
                    raise ValueError(f'{self.ann_file}, line {number}: expected "<relative path> <label >= 0>", '
                                     f'got {line.strip()!r}')
                items.append(dict(img_path=osp.join(self.image_dir, parts[0].strip()), gt_label=int(parts[1])))
        if self._class_names is None:
            count = max(item['gt_label'] for item in items) + 1 if items else 0
            self._metainfo['classes'] = tuple(str(i) for i in range(count))
        elif items and max(item['gt_label'] for item in items) >= len(self._class_names):
            raise ValueError(f'{self.ann_file} has labels up to {max(i["gt_label"] for i in items)} but classes '
                             f'names {len(self._class_names)}')
        return items

    def _from_folders(self) -> List[dict]:
        folders = sorted(d for d in os.listdir(self.image_dir) if osp.isdir(osp.join(self.image_dir, d)))
        names = self._class_names if self._class_names is not None else folders
        if set(names) != set(folders):
            raise ValueError(f'classes must be the class folders of {self.image_dir}; missing folders: '
                             f'{sorted(set(names) - set(folders))}, folders not in classes: '
                             f'{sorted(set(folders) - set(names))}')
        self._metainfo['classes'] = tuple(names)
        items = []
        for label, name in enumerate(names):
            for root, _, files in sorted(os.walk(osp.join(self.image_dir, name))):
                items += [dict(img_path=osp.join(root, file), gt_label=label) for file in sorted(files)
                          if file.lower().endswith(IMAGE_EXTENSIONS)]
        return items

    @property
    def num_classes(self) -> int:
        return len(self.metainfo['classes'])
