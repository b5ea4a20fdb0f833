# RetinaNet with an Xception backbone and FPN, 1x schedule on COCO.
# Differences from mmdet 3.3.0's retinanet_r50_fpn_1x_coco.py:
# * backbone: Xception (entry, middle and exit flows; 22.86 M parameters with its ImageNet classifier). No ImageNet
#   weights exist in mmlight yet (a later issue; timm's Keras-ported weights expect inputs normalised with
#   mean = std = 0.5), so it trains from scratch: init_cfg=None (Kaiming convs), frozen_stages=-1, norm_eval=False.
# * The FPN takes the stride-8/16/32 outputs (256, 728, 2048 channels: the second entry-flow block, the end of the
#   middle flow, the exit flow) directly (start_level=0); extra levels P6/P7 as in mmdet ('on_input').
# Data, schedule (12 epochs, SGD lr 0.01 at 16 images per batch) and head are mmdet's.
_base_ = ['mmdet::retinanet/retinanet_r50_fpn_1x_coco.py']

custom_imports = dict(imports=['mmlight'], allow_failed_imports=False)

model = dict(
    backbone=dict(
        _delete_=True,
        type='Xception',
        out_indices=(1, 2, 3),  # strides 8, 16, 32
        frozen_stages=-1,
        norm_eval=False,
        norm_cfg=dict(type='BN', requires_grad=True),
        init_cfg=None),  # from scratch: no ImageNet Xception weights in mmlight yet
    neck=dict(in_channels=[256, 728, 2048], start_level=0))
