# The embedded demo for MicroNet: the flagship demo (retinanet_compconv128_demo.py: data, input size, neck/head
# width, schedule, optimiser) with the MicroNet-M3 backbone of configs/micronet/retinanet_micronet-m3_fpn_3x_coco.py
# in place of the CompConv128 ResNet-50, trained from scratch (no ImageNet weights offline; the official
# initialisation, nothing frozen, BN statistics updated). Dynamic Shift-Max pools over each image's unpadded region.
# Train it like the CompConv demo: python tools/train.py configs/demo/retinanet_micronet-m3_demo.py
_base_ = ['./retinanet_compconv128_demo.py']

model = dict(
    backbone=dict(
        _delete_=True,
        type='MicroNet',
        arch='m3',
        out_indices=(0, 1, 2, 3),
        frozen_stages=-1,
        norm_eval=False,
        exclude_padding=True,
        norm_cfg=dict(type='BN', requires_grad=True),
        init_cfg=None),
    neck=dict(in_channels=[16, 24, 80, 864]))
