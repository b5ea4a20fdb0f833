# The embedded demo for DCD: the flagship demo (retinanet_compconv128_demo.py: data, input size, neck/head width,
# schedule, optimiser) with the DCD-ResNet-50 backbone of configs/dcd/retinanet_dcd-r50_fpn_1x_coco.py in place of
# the CompConv128 ResNet-50, trained from scratch (no converted ImageNet weights: BN trains, nothing frozen).
# Train it like the CompConv demo: python tools/train.py configs/demo/retinanet_dcd-r50_demo.py
_base_ = ['./retinanet_compconv128_demo.py']

model = dict(
    backbone=dict(
        _delete_=True,
        type='DCDResNet',
        depth=50,
        out_indices=(0, 1, 2, 3),
        frozen_stages=-1,
        norm_cfg=dict(type='BN', requires_grad=True),
        norm_eval=False,
        init_cfg=None),
    neck=dict(in_channels=[256, 512, 1024, 2048]))
