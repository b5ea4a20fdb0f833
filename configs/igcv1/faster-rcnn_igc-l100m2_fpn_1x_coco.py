# Faster R-CNN + FPN, 1x schedule on COCO, with the IGC-L100M2 network of IGCV1 (interleaved group convolutions,
# Zhang et al., ICCV 2017) as backbone: ResNet-18 layout, every 3x3 conv an IGC block with M = 2 secondary
# partitions and L = 100/200/400/800 primary ones; 8.61 M parameters with its ImageNet classifier (~7.0 M without).
# What differs from mmdet 3.3.0's faster-rcnn_r50_fpn_1x_coco.py: only the backbone and the FPN's in_channels (the
# four stages at strides 4, 8, 16, 32 have 200/400/800/1600 channels). Data, schedule (12 epochs, SGD lr 0.02 at 16
# images per batch), RPN and RoI heads are mmdet's.
# Initialisation: the backbone of mmlight's own ImageNet classifier (configs/imagenet/igc-l100m2_in1k.py),
# extracted to checkpoints/igc-l100m2_in1k_backbone.pth by the commands in backbone_init_help; tools/train.py
# stops at once if the file is missing or does not fit the backbone. Stem and stage 1 frozen and BN in eval
# mode, as mmdet's recipe with an ImageNet backbone.
_base_ = ['mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py']

custom_imports = dict(imports=['mmlight'], allow_failed_imports=False)

backbone_checkpoint = 'checkpoints/igc-l100m2_in1k_backbone.pth'
# printed by tools/train.py when the checkpoint is missing: train the ImageNet classifier, extract its backbone
backbone_init_help = ('python tools/train.py configs/imagenet/igc-l100m2_in1k.py && '
                      'python tools/model_converters/extract_backbone.py '
                      '$(cat work_dirs/igc-l100m2_in1k/last_checkpoint) ' + backbone_checkpoint)

model = dict(
    backbone=dict(
        _delete_=True,
        type='IGCV1',
        arch='l100m2',
        out_indices=(0, 1, 2, 3),
        frozen_stages=1,
        norm_eval=True,
        norm_cfg=dict(type='BN', requires_grad=True),
        init_cfg=dict(type='Pretrained', prefix='backbone.', checkpoint=backbone_checkpoint)),
    neck=dict(in_channels=[200, 400, 800, 1600]))
