# Faster R-CNN + FPN, 1x schedule on COCO, with MobileNetV1 1.0 (Howard et al., arXiv 1704.04861; 13
# depthwise-separable units, 4.2 M parameters with its ImageNet classifier, ~3.2 M without) as backbone.
# What differs from mmdet 3.3.0's faster-rcnn_r50_fpn_1x_coco.py: only the backbone and the FPN's in_channels (the
# taps after units 3, 5, 11 and 13 at strides 4, 8, 16, 32 have 128/256/512/1024 channels). Data, schedule
# (12 epochs, SGD lr 0.02 at 16 images per batch), RPN and RoI heads are mmdet's.
# Initialisation: the backbone of mmlight's own ImageNet classifier (configs/imagenet/mobilenetv1_in1k.py),
# extracted to checkpoints/mobilenetv1_in1k_backbone.pth by the commands in backbone_init_help; tools/train.py
# stops at once if the file is missing or does not fit the backbone. Stem and stage 1 frozen and BN in eval
# mode, as mmdet's recipe with an ImageNet backbone.
_base_ = ['mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py']

custom_imports = dict(imports=['mmlight'], allow_failed_imports=False)

backbone_checkpoint = 'checkpoints/mobilenetv1_in1k_backbone.pth'
# printed by tools/train.py when the checkpoint is missing: train the ImageNet classifier, extract its backbone
backbone_init_help = ('python tools/train.py configs/imagenet/mobilenetv1_in1k.py && '
                      'python tools/model_converters/extract_backbone.py '
                      '$(cat work_dirs/mobilenetv1_in1k/last_checkpoint) ' + backbone_checkpoint)

model = dict(
    backbone=dict(
        _delete_=True,
        type='MobileNetV1',
        widen_factor=1.0,
        out_indices=(0, 1, 2, 3),
        frozen_stages=1,
        norm_eval=True,
        norm_cfg=dict(type='BN', requires_grad=True),
        init_cfg=dict(type='Pretrained', prefix='backbone.', checkpoint=backbone_checkpoint)),
    neck=dict(in_channels=[128, 256, 512, 1024]))
