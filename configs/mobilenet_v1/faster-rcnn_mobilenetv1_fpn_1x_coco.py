# Faster R-CNN + FPN, 1x schedule on COCO, with MobileNetV1 1.0 (Howard et al., arXiv 1704.04861; 13
# depthwise-separable units, 4.2 M parameters with its ImageNet classifier, ~3.2 M without) as backbone.
# What differs from mmdet 3.3.0's faster-rcnn_r50_fpn_1x_coco.py: only the backbone and the FPN's in_channels (the
# taps after units 3, 5, 11 and 13 at strides 4, 8, 16, 32 have 128/256/512/1024 channels). Data, schedule
# (12 epochs, SGD lr 0.02 at 16 images per batch), RPN and RoI heads are mmdet's.
# Initialisation: mmlight has no ImageNet weights for MobileNetV1 yet (a later issue), so the backbone is trained
# from scratch -- init_cfg=None (Kaiming convs, BN weight 1), nothing frozen (frozen_stages=-1) and BN statistics
# updated (norm_eval=False) -- unlike mmdet's recipe, which loads torchvision's ResNet-50, freezes the stem and
# stage 1 and keeps BN in eval mode. A 1x schedule from scratch is far from converged; expect much lower mAP.
_base_ = ['mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py']

custom_imports = dict(imports=['mmlight'], allow_failed_imports=False)

model = dict(
    backbone=dict(
        _delete_=True,
        type='MobileNetV1',
        widen_factor=1.0,
        out_indices=(0, 1, 2, 3),
        frozen_stages=-1,
        norm_eval=False,
        norm_cfg=dict(type='BN', requires_grad=True),
        init_cfg=None),
    neck=dict(in_channels=[128, 256, 512, 1024]))
