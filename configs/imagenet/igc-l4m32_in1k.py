# IGC-L4M32+Ident. (IGCV1, interleaved group convolutions, Zhang et al., ICCV 2017, arXiv 1707.02725;
# ResNet-18 layout, 11.205 M parameters with the classifier) trained from scratch on ImageNet-1k.
# Recipe: the official MXNet code, hellozting/InterleavedGroupConvolutions @2871fdb train_imagenet.py + README (one
# recipe for the three networks): Nesterov SGD momentum 0.9, lr 0.1 at 256 images per batch (8 GPUs x 32), weight
# decay 1e-4 on every parameter (BN gamma/beta and biases included), lr x0.1 at epochs 30, 60, 90, no warmup, 120
# epochs, no label smoothing, no dropout, no mixup; train: short side random in [256, 480] (scale 0.533-1 of the
# 480 record), random 224 crop, aspect jitter +-0.25, flip, HSL jitter (36, 50, 50); test: short side 256 -> centre
# crop 224.
# Aims at: 69.23 % top-1 (official README: 30.77 / 10.99 % top-1 / top-5 error).
# Deviations:
# * No aspect-ratio and HSL jitter (no such transforms among mmcv/mmdet/mmlight's); the scale augmentation is mmcv's
#   RandomResize of the short side to 480 x [0.533, 1] (long side capped at 10x that) + mmdet's RandomCrop 224.
# * ImageNet mean/std (the detectors' normalisation) instead of the repo's mean (123.37, 112.76, 99.41) / std
#   (69.00, 66.09, 68.29); BN eps 1e-5 (the detection backbone's) instead of MXNet's 2e-5.
# The backbone is IGCV1 (arch l4m32) with the BN of configs/igcv1/retinanet_igc-l100m2_fpn_1x_coco.py (there is no
# l4m32 detection config yet), so a l4m32 detector config written the same way loads these weights.
_base_ = ['./_base_/imagenet_bs64.py', './_base_/default_runtime.py']

model = dict(
    type='LightClassifier',
    backbone=dict(
        type='IGCV1',
        arch='l4m32',
        out_indices=(3, ),
        frozen_stages=-1,
        norm_eval=False,
        norm_cfg=dict(type='BN', requires_grad=True),
        init_cfg=None),
    head=dict(type='LinearClsHead', in_channels=1024, num_classes=1000, dropout=0.0),
    label_smoothing=0.0)

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomResize', scale=(4800, 480), ratio_range=(0.533, 1.0), keep_ratio=True),
    dict(type='RandomCrop', crop_size=(224, 224)),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackClsInputs'),
]
train_dataloader = dict(batch_size=32, dataset=dict(pipeline=train_pipeline))  # x 8 GPUs = 256
val_dataloader = dict(batch_size=32)
test_dataloader = val_dataloader

optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=1e-4, nesterov=True))
param_scheduler = [dict(type='MultiStepLR', milestones=[30, 60, 90], gamma=0.1, by_epoch=True, begin=0, end=120)]
train_cfg = dict(by_epoch=True, max_epochs=120, val_interval=1)
auto_scale_lr = dict(enable=False, base_batch_size=256)
