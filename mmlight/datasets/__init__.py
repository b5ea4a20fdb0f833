from .demo_coco import CLASSES as DEMO_CLASSES
from .demo_coco import DemoSpec, generate_demo_coco

__all__ = ['DEMO_CLASSES', 'DemoSpec', 'generate_demo_coco']
