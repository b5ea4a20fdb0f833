# RetinaNet R50-FPN 1x on COCO with the 3x3 convs of mmdet's ResNet-50 built as IGC blocks (IGCV1's interleaved
# group convolution) through conv_cfg, as IGC-L100M2 does it: M = 2 secondary partitions, so L = C / 2 primary
# partitions (32/64/128/256 in the four stages' bottleneck 3x3 convs; the stride stays on the 3x3 conv).
# conv_cfg reaches every conv of the backbone; IGC builds a plain conv where it cannot apply and says why in the
# module's repr: the 3-channel 7x7 stem (L = 32 does not divide 3 input channels) and every 1x1 conv (the bottleneck
# reductions/expansions and the downsample projections: IGC is defined for spatial convs).
# What differs from mmdet 3.3.0's retinanet_r50_fpn_1x_coco.py: the 3x3 convs, and the backbone's initialisation:
# torchvision's ResNet-50 weights do not fit IGC blocks and mmlight has no ImageNet weights for them yet (a later
# issue), so the backbone is trained from scratch -- init_cfg=None (mmdet ResNet's Kaiming/constant init; the IGC
# blocks initialise themselves), nothing frozen (frozen_stages=-1) and BN statistics updated (norm_eval=False).
# Data, schedule (12 epochs, SGD lr 0.01 at 16 images per batch), neck and head are mmdet's.
_base_ = ['mmdet::retinanet/retinanet_r50_fpn_1x_coco.py']

custom_imports = dict(imports=['mmlight'], allow_failed_imports=False)

model = dict(
    backbone=dict(
        conv_cfg=dict(type='IGC', secondary_groups=2),
        frozen_stages=-1,
        norm_eval=False,
        init_cfg=None))
