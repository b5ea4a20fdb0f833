"""Write an embedded demo dataset: the COCO-layout detection set (default) used by the detection demo and the
runner tests, or (``--kind imagenet``) the ImageNet-layout classification set used by the classification demo and
the ImageNet-config tests."""
import argparse
import os.path as osp
import sys
import time

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
from mmlight.datasets.demo_coco import DemoSpec, generate_demo_coco  # noqa: E402
from mmlight.datasets.demo_imagenet import CLASSES, TinyImageNetSpec, generate_tiny_imagenet  # noqa: E402

DEFAULT_OUT = dict(coco='data/demo_coco', imagenet='data/demo_imagenet')


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
    given = {k: v for k, v in dict(image_size=args.image_size, seed=args.seed).items() if v is not None}
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
    state = f'written in {time.time() - start:.1f} s' if written else 'already present, unchanged'
    print(f'demo dataset {out}: {what}, {state}')


if __name__ == '__main__':
    main()
