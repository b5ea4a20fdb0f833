# RetinaNet with a ShuffleNetV1 1x (g = 3) backbone and FPN, 1x schedule on COCO.
# Differences from mmdet 3.3.0's retinanet_r50_fpn_1x_coco.py:
# * backbone: ShuffleNetV1, groups 3, scale factor 1 (1.87 M parameters with its ImageNet classifier). No ImageNet
#   weights exist in mmlight yet (a later issue), so it trains from scratch: init_cfg=None (Kaiming convs),
#   frozen_stages=-1, norm_eval=False.
# * The FPN takes the stride-8/16/32 stages (240, 480, 960 channels) directly (start_level=0) rather than four
#   inputs with the first skipped (the R50 recipe's start_level=1); extra levels P6/P7 as in mmdet ('on_input').
# Data, schedule (12 epochs, SGD lr 0.01 at 16 images per batch) and head are mmdet's.
_base_ = ['mmdet::retinanet/retinanet_r50_fpn_1x_coco.py']

custom_imports = dict(imports=['mmlight'], allow_failed_imports=False)

model = dict(
    backbone=dict(
        _delete_=True,
        type='ShuffleNetV1',
        groups=3,
        widen_factor=1.0,
        out_indices=(1, 2, 3),  # strides 8, 16, 32
        frozen_stages=-1,
        norm_eval=False,
        norm_cfg=dict(type='BN', requires_grad=True),
        init_cfg=None),  # from scratch: no ImageNet ShuffleNetV1 weights in mmlight yet
    neck=dict(in_channels=[240, 480, 960], start_level=0))
