# Classification demo: MobileNetV1 x0.5 trained from scratch on the embedded tiny ImageNet-layout dataset
# (10 shape classes, 400 train / 100 val images of 64x64; `python tools/misc/make_demo_dataset.py --kind imagenet`)
# with the ImageNet classification path (LightClassifier, ImageNet dataset, RandomResizedCrop, Accuracy top-1/top-5).
# `bash tools/run_cls_demo.sh` generates the data, trains and prints top-1 / top-5; chance is 10 % / 50 %.
_base_ = ['../imagenet/_base_/imagenet_bs64.py', '../imagenet/_base_/default_runtime.py']

data_root = 'data/demo_imagenet/'
model = dict(
    type='LightClassifier',
    backbone=dict(type='MobileNetV1', widen_factor=0.5, out_indices=(3, )),
    head=dict(type='LinearClsHead', in_channels=512, num_classes=10),
    label_smoothing=0.1)

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomResizedCrop', scale=64, crop_ratio_range=(0.4, 1.0)),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackClsInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ResizeEdge', scale=64, edge='short'),
    dict(type='CenterCrop', crop_size=64),
    dict(type='PackClsInputs'),
]
train_dataloader = dict(
    batch_size=32, num_workers=2, persistent_workers=False,
    dataset=dict(data_root=data_root, pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=50, num_workers=1, persistent_workers=False,
    dataset=dict(data_root=data_root, pipeline=test_pipeline))
test_dataloader = val_dataloader

optim_wrapper = dict(optimizer=dict(type='AdamW', lr=4e-3, weight_decay=0.01))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=20),
    dict(type='CosineAnnealingLR', by_epoch=True, begin=0, end=40, eta_min=1e-5)
]
train_cfg = dict(by_epoch=True, max_epochs=40, val_interval=10)
default_hooks = dict(logger=dict(interval=13), checkpoint=dict(interval=10, max_keep_ckpts=1))
auto_scale_lr = dict(enable=False, base_batch_size=32)
randomness = dict(seed=0)
