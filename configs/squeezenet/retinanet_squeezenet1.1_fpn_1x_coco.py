# RetinaNet with a SqueezeNet 1.1 backbone (BN after every conv) and FPN, 1x schedule on COCO.
# Differences from mmdet 3.3.0's retinanet_r50_fpn_1x_coco.py:
# * backbone: SqueezeNet 1.1 with BN (the paper's network has no BN; BN lets a detector train it from scratch).
#   No ImageNet weights exist in mmlight yet (a later issue), so it trains from scratch: init_cfg=None (Kaiming
#   convs), frozen_stages=-1, norm_eval=False.
# * SqueezeNet stops at stride 16 (there is no stride-32 stage). RetinaNet's levels are strides 8..128: the FPN
#   takes the stride-8 and stride-16 maps (layer2, layer3) and builds stride 32, 64 and 128 with its extra stride-2
#   3x3 convs, the first one on the stride-16 backbone map ('on_input'), so the head keeps its five levels and
#   anchor strides unchanged.
# Data, schedule (12 epochs, SGD lr 0.01 at 16 images per batch) and head are mmdet's.
_base_ = ['mmdet::retinanet/retinanet_r50_fpn_1x_coco.py']

custom_imports = dict(imports=['mmlight'], allow_failed_imports=False)

model = dict(
    backbone=dict(
        _delete_=True,
        type='SqueezeNet',
        arch='1.1',
        out_indices=(1, 2),  # strides 8, 16
        frozen_stages=-1,
        norm_eval=False,
        norm_cfg=dict(type='BN', requires_grad=True),
        init_cfg=None),  # from scratch: no ImageNet SqueezeNet weights in mmlight yet
    neck=dict(in_channels=[256, 512], start_level=0, add_extra_convs='on_input', num_outs=5))
