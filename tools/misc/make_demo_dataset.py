"""Write the embedded demo dataset (COCO layout) used by the demo config and the runner tests."""
import argparse
import os.path as osp
import sys
import time

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
from mmlight.datasets.demo_coco import DemoSpec, generate_demo_coco  # noqa: E402


def main() -> None:
    defaults = DemoSpec()
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--out', default='data/demo_coco', help='output directory (default: %(default)s)')
    parser.add_argument('--num-train', type=int, default=defaults.num_train)
    parser.add_argument('--num-val', type=int, default=defaults.num_val)
    parser.add_argument('--image-size', type=int, default=defaults.image_size)
    parser.add_argument('--seed', type=int, default=defaults.seed)
    parser.add_argument('--force', action='store_true', help='rewrite even if an identical dataset is there')
    args = parser.parse_args()
    spec = DemoSpec(num_train=args.num_train, num_val=args.num_val, image_size=args.image_size, seed=args.seed)
    start = time.time()
    written = generate_demo_coco(args.out, spec, force=args.force)
    state = f'written in {time.time() - start:.1f} s' if written else 'already present, unchanged'
    print(f'demo dataset {args.out}: {spec.num_train} train / {spec.num_val} val images, {state}')


if __name__ == '__main__':
    main()
