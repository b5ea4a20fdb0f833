# RetinaNet + FPN, 1x schedule on COCO, with DCD-ResNet-50 (dynamic convolution decomposition, Li et al., ICLR 2021,
# arXiv 2103.08756; official placement: every conv of every Bottleneck dynamic, stem and downsample convs static;
# 27.56 M backbone parameters) as backbone.
# What differs from mmdet 3.3.0's retinanet_r50_fpn_1x_coco.py: only the backbone type (DCDResNet instead of
# ResNet, the same out_indices / frozen_stages=1 / norm_eval=True / BN) and its initialisation: the official DCD
# ImageNet weights (Google Drive, liyunsheng13/dcd README) converted to DCDResNet's keys, instead of torchvision's
# ResNet-50. The FPN in_channels are ResNet-50's (256, 512, 1024, 2048). Data, schedule (12 epochs, SGD lr 0.01 at
# 16 images per batch) and head are mmdet's. The DCD contexts pool over the whole padded image, as the official
# code does (exclude_padding=False; see configs/dcd/README.md).
# The backbone checkpoint is produced by the two commands in backbone_init_help (download, convert); tools/train.py
# stops with them when the file is missing. To train from scratch instead: init_cfg=None, frozen_stages=-1,
# norm_eval=False.
_base_ = ['mmdet::retinanet/retinanet_r50_fpn_1x_coco.py']

custom_imports = dict(imports=['mmlight'], allow_failed_imports=False)

backbone_checkpoint = 'checkpoints/dcd-r50_official_converted.pth'
backbone_init_help = (
    'mkdir -p checkpoints && pip install gdown && '
    'gdown "https://drive.google.com/uc?id=14VUXecopj3aTu1s4IKdT2FsPt7Iq7BDK" '
    '-O checkpoints/resnet50_dcd.pth.tar && python tools/model_converters/dcd_official.py '
    f'checkpoints/resnet50_dcd.pth.tar {backbone_checkpoint}')

model = dict(
    backbone=dict(
        _delete_=True,
        type='DCDResNet',
        depth=50,
        out_indices=(0, 1, 2, 3),
        frozen_stages=1,
        norm_cfg=dict(type='BN', requires_grad=True),
        norm_eval=True,
        init_cfg=dict(type='Pretrained', checkpoint=backbone_checkpoint, prefix='backbone.')),
    neck=dict(in_channels=[256, 512, 1024, 2048]))
