# RetinaNet with a ShuffleNetV1 1x (g = 3) backbone and FPN, 1x schedule on COCO.
# Differences from mmdet 3.3.0's retinanet_r50_fpn_1x_coco.py:
# * backbone: ShuffleNetV1, groups 3, scale factor 1 (1.87 M parameters with its ImageNet classifier).
# * Initialisation: the backbone of mmlight's own ImageNet classifier (configs/imagenet/shufflenetv1-1x-g3_in1k.py),
#   extracted to checkpoints/shufflenetv1-1x-g3_in1k_backbone.pth by the commands in backbone_init_help; tools/train.py
#   stops at once if the file is missing or does not fit the backbone. Stem and stage 1 frozen and BN in eval
#   mode, as mmdet's recipe with an ImageNet backbone.
# * The FPN takes the stride-8/16/32 stages (240, 480, 960 channels) directly (start_level=0) rather than four
#   inputs with the first skipped (the R50 recipe's start_level=1); extra levels P6/P7 as in mmdet ('on_input').
# Data, schedule (12 epochs, SGD lr 0.01 at 16 images per batch) and head are mmdet's.
_base_ = ['mmdet::retinanet/retinanet_r50_fpn_1x_coco.py']

custom_imports = dict(imports=['mmlight'], allow_failed_imports=False)

backbone_checkpoint = 'checkpoints/shufflenetv1-1x-g3_in1k_backbone.pth'
# printed by tools/train.py when the checkpoint is missing: train the ImageNet classifier, extract its backbone
backbone_init_help = ('python tools/train.py configs/imagenet/shufflenetv1-1x-g3_in1k.py && '
                      'python tools/model_converters/extract_backbone.py '
                      '$(cat work_dirs/shufflenetv1-1x-g3_in1k/last_checkpoint) ' + backbone_checkpoint)

model = dict(
    backbone=dict(
        _delete_=True,
        type='ShuffleNetV1',
        groups=3,
        widen_factor=1.0,
        out_indices=(1, 2, 3),  # strides 8, 16, 32
        frozen_stages=1,
        norm_eval=True,
        norm_cfg=dict(type='BN', requires_grad=True),
        init_cfg=dict(type='Pretrained', prefix='backbone.', checkpoint=backbone_checkpoint)),
    neck=dict(in_channels=[240, 480, 960], start_level=0))
