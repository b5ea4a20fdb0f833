"""Install mmlight: compact convolutions and lightweight backbones for MMDetection 3.x."""
import os.path as osp

from setuptools import find_packages, setup


def read_version() -> str:
    namespace: dict = {}
    with open(osp.join(osp.dirname(__file__), 'mmlight', 'version.py')) as f:
        exec(f.read(), namespace)
    return namespace['__version__']


setup(
    name='mmlight',
    version=read_version(),
    description='Compact convolutions and lightweight backbones as MMDetection 3.x plugins',
    long_description=open(osp.join(osp.dirname(__file__), 'README.md')).read()
    if osp.exists(osp.join(osp.dirname(__file__), 'README.md')) else '',
    long_description_content_type='text/markdown',
    packages=find_packages(include=['mmlight', 'mmlight.*']),
    python_requires='>=3.9',
    # torch and mmcv are installed by tools/setup_env.sh (a CUDA torch is kept, mmcv is built from source
    # against it); they are listed here so that pip check reports a broken environment.
    install_requires=[
        'torch>=2.0',
        'mmcv>=2.0.0rc4,<2.2.0',
        'mmengine>=0.10.6,<1.0.0',
        'mmdet>=3.3.0,<3.4.0',
        'pycocotools',
        'numpy',
    ],
    # deploy: ONNX export and onnxruntime (versions pinned in requirements/constraints.txt)
    extras_require={'tests': ['pytest'], 'deploy': ['onnx', 'onnxscript', 'onnxruntime']},
    license='Apache-2.0',
    zip_safe=False,
)
