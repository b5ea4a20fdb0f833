# RetinaNet R50-FPN 1x on COCO with the 3x3 convs of mmdet's ResNet-50 built as IGC blocks (IGCV1's interleaved
# group convolution) through conv_cfg, as IGC-L100M2 does it: M = 2 secondary partitions, so L = C / 2 primary
# partitions (32/64/128/256 in the four stages' bottleneck 3x3 convs; the stride stays on the 3x3 conv).
# conv_cfg reaches every conv of the backbone; IGC builds a plain conv where it cannot apply and says why in the
# module's repr: the 3-channel 7x7 stem (L = 32 does not divide 3 input channels) and every 1x1 conv (the bottleneck
# reductions/expansions and the downsample projections: IGC is defined for spatial convs).
# What differs from mmdet 3.3.0's retinanet_r50_fpn_1x_coco.py: the 3x3 convs, and the backbone's
# initialisation (torchvision's ResNet-50 weights do not fit IGC blocks).
# Initialisation: the backbone of mmlight's own ImageNet classifier (configs/imagenet/r50-igc_in1k.py),
# extracted to checkpoints/r50-igc_in1k_backbone.pth by the commands in backbone_init_help; tools/train.py
# stops at once if the file is missing or does not fit the backbone. Stem and stage 1 frozen and BN in eval
# mode, as mmdet's recipe with an ImageNet backbone.
# Data, schedule (12 epochs, SGD lr 0.01 at 16 images per batch), neck and head are mmdet's.
_base_ = ['mmdet::retinanet/retinanet_r50_fpn_1x_coco.py']

custom_imports = dict(imports=['mmlight'], allow_failed_imports=False)

backbone_checkpoint = 'checkpoints/r50-igc_in1k_backbone.pth'
# printed by tools/train.py when the checkpoint is missing: train the ImageNet classifier, extract its backbone
backbone_init_help = ('python tools/train.py configs/imagenet/r50-igc_in1k.py && '
                      'python tools/model_converters/extract_backbone.py '
                      '$(cat work_dirs/r50-igc_in1k/last_checkpoint) ' + backbone_checkpoint)

model = dict(
    backbone=dict(
        conv_cfg=dict(type='IGC', secondary_groups=2),
        frozen_stages=1,
        norm_eval=True,
        init_cfg=dict(type='Pretrained', prefix='backbone.', checkpoint=backbone_checkpoint)))
