# The embedded demo for MicroNet: the flagship demo (retinanet_compconv128_demo.py: data, input size, neck/head
# width, schedule, optimiser) with the MicroNet-M3 backbone of configs/micronet/retinanet_micronet-m3_fpn_3x_coco.py
# in place of the CompConv128 ResNet-50, trained from scratch (no ImageNet weights offline; the official
# initialisation, nothing frozen, BN statistics updated). Dynamic Shift-Max pools over each image's unpadded region.
# Train it like the CompConv demo: python tools/train.py configs/demo/retinanet_micronet-m3_demo.py
# Schedule: the 0.7 M-parameter backbone learns from scratch more slowly than the CompConv128 ResNet-50 and each
# iteration costs about a third as much, so it trains 15 epochs at a 5x higher peak lr (2e-3).
_base_ = ['./retinanet_compconv128_demo.py']

max_epochs = 15
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
optim_wrapper = dict(optimizer=dict(lr=2e-3))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=50),
    dict(type='CosineAnnealingLR', by_epoch=True, begin=0, end=max_epochs, eta_min=1e-5)
]
default_hooks = dict(checkpoint=dict(interval=max_epochs))

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
