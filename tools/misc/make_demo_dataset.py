"""Write an embedded demo dataset: the COCO-layout detection set (default) used by the detection demo and the
runner tests, or (``--kind imagenet``) the ImageNet-layout classification set used by the classification demo and
the ImageNet-config tests."""
import argparse
import os.path as osp
import shutil
import sys
import time

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
from mmlight.datasets.demo_coco import DemoSpec, generate_demo_coco  # noqa: E402
from mmlight.datasets.demo_imagenet import CLASSES, TinyImageNetSpec, generate_tiny_imagenet  # noqa: E402

DEFAULT_OUT = dict(coco='data/demo_coco', imagenet='data/demo_imagenet')


def _first_missing(path: str) -> str:
    """The outermost folder of ``path`` (``path`` itself or a parent) that does not exist yet; ``''`` if it does."""
    path, missing = osp.abspath(path), ''
    while not osp.exists(path):
        missing, path = path, osp.dirname(path)
    return missing


def check_args(args: argparse.Namespace, out: str) -> None:
    """Exit with one ``error:`` line for an argument out of range or an ``--out`` that is a file."""
    for name in ('num_train', 'num_val'):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            sys.exit(f'error: --{name.replace("_", "-")} must be >= 1, got {getattr(args, name)}')
    if args.seed < 0:
        sys.exit(f'error: --seed must be >= 0, got {args.seed}')
    smallest = DemoSpec().max_object + 2 if args.kind == 'coco' else 24  # the specs' smallest image sides
    if args.image_size is not None and args.image_size < smallest:
        sys.exit(f'error: --image-size must be >= {smallest} for --kind {args.kind}, got {args.image_size}')
    if osp.exists(out) and not osp.isdir(out):
        sys.exit(f'error: --out {out} is a file, expected a folder (or a path that does not exist yet)')


def main() -> None:
    coco, tiny = DemoSpec(), TinyImageNetSpec()
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--kind', choices=('coco', 'imagenet'), default='coco', help='which dataset (default: coco)')
    parser.add_argument('--out', help='output directory (default: data/demo_coco or data/demo_imagenet)')
    parser.add_argument('--num-train', type=int, help=f'coco: train images (default {coco.num_train}); imagenet: '
                        f'train images per class (default {tiny.train_per_class})')
    parser.add_argument('--num-val', type=int, help=f'coco: val images (default {coco.num_val}); imagenet: val '
                        f'images per class (default {tiny.val_per_class})')
    parser.add_argument('--image-size', type=int,
                        help=f'image side (default {coco.image_size} / {tiny.image_size})')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--force', action='store_true', help='rewrite even if an identical dataset is there')
    args = parser.parse_args()
    out = args.out or DEFAULT_OUT[args.kind]
    check_args(args, out)
    given = {k: v for k, v in dict(image_size=args.image_size, seed=args.seed).items() if v is not None}
    created = _first_missing(out)  # removed again if the run fails: no half-written dataset
    start = time.time()
    try:
        if args.kind == 'coco':
            sizes = dict(num_train=args.num_train, num_val=args.num_val)
            spec = DemoSpec(**given, **{k: v for k, v in sizes.items() if v is not None})
            written = generate_demo_coco(out, spec, force=args.force)
            what = f'{spec.num_train} train / {spec.num_val} val images'
        else:
            spec = TinyImageNetSpec(**given, **{k: v for k, v in dict(
                train_per_class=args.num_train, val_per_class=args.num_val).items() if v is not None})
            written = generate_tiny_imagenet(out, spec, force=args.force)
            what = (f'{len(CLASSES)} classes x ({spec.train_per_class} train + {spec.val_per_class} val) images '
                    f'of {spec.image_size}x{spec.image_size}')
    except (ValueError, FileExistsError) as error:
        sys.exit(f'error: {error}')
    except OSError as error:
        if created:
            shutil.rmtree(created, ignore_errors=True)
        state = 'nothing written' if created else 'the dataset there is incomplete: run the command again'
        sys.exit(f'error: --out {out}: cannot write the dataset ({error.strerror or error}: '
                 f'{error.filename or out}); {state}')
    except BaseException:
        if created:
            shutil.rmtree(created, ignore_errors=True)
        raise
    state = f'written in {time.time() - start:.1f} s' if written else 'already present, unchanged'
    print(f'demo dataset {out}: {what}, {state}')


if __name__ == '__main__':
    main()
