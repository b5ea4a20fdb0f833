# Faster R-CNN with an Xception backbone and FPN, 1x schedule on COCO.
# Differences from mmdet 3.3.0's faster-rcnn_r50_fpn_1x_coco.py:
# * backbone: Xception (entry, middle and exit flows; 22.86 M parameters with its ImageNet classifier).
# * Initialisation: the backbone of mmlight's own ImageNet classifier (configs/imagenet/xception_in1k.py),
#   extracted to checkpoints/xception_in1k_backbone.pth by the commands in backbone_init_help; tools/train.py
#   stops at once if the file is missing or does not fit the backbone. Stem and stage 1 frozen and BN in eval
#   mode, as mmdet's recipe with an ImageNet backbone.
# * FPN inputs: strides 4, 8, 16, 32 (128, 256, 728, 2048 channels: the first two entry-flow blocks, the end of
#   the middle flow, the exit flow).
# Data, schedule (12 epochs, SGD lr 0.02 at 16 images per batch), RPN and RoI head are mmdet's.
_base_ = ['mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py']

custom_imports = dict(imports=['mmlight'], allow_failed_imports=False)

backbone_checkpoint = 'checkpoints/xception_in1k_backbone.pth'
# printed by tools/train.py when the checkpoint is missing: train the ImageNet classifier, extract its backbone
backbone_init_help = ('python tools/train.py configs/imagenet/xception_in1k.py && '
                      'python tools/model_converters/extract_backbone.py '
                      '$(cat work_dirs/xception_in1k/last_checkpoint) ' + backbone_checkpoint)

model = dict(
    backbone=dict(
        _delete_=True,
        type='Xception',
        out_indices=(0, 1, 2, 3),  # strides 4, 8, 16, 32
        frozen_stages=1,
        norm_eval=True,
        norm_cfg=dict(type='BN', requires_grad=True),
        init_cfg=dict(type='Pretrained', prefix='backbone.', checkpoint=backbone_checkpoint)),
    neck=dict(in_channels=[128, 256, 728, 2048]))
