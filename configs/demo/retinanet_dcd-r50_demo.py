# The embedded demo for DCD: the DCD-ResNet-50 RetinaNet of configs/dcd/retinanet_dcd-r50_fpn_1x_coco.py, trained
# from scratch on the generated dataset in data/demo_coco (tools/misc/make_demo_dataset.py) at 160x160 on a CPU.
# What differs from that config: the data, the input size, the schedule and optimiser (those of
# retinanet_compconv128_demo.py), and a from-scratch backbone (no converted ImageNet weights: BN trains, no frozen
# stages). Run: python tools/misc/make_demo_dataset.py --out data/demo_coco, then
# python tools/train.py configs/demo/retinanet_dcd-r50_demo.py
_base_ = ['../dcd/retinanet_dcd-r50_fpn_1x_coco.py']

data_root = 'data/demo_coco/'
# must match mmlight.datasets.demo_coco.CLASSES (a test checks it)
metainfo = dict(classes=('circle', 'square', 'triangle', 'ring', 'cross'),
                palette=[(220, 60, 60), (60, 170, 60), (60, 90, 220), (220, 170, 40), (170, 60, 200)])
image_scale = (160, 160)
max_epochs = 12
batch_size = 8

model = dict(
    backbone=dict(frozen_stages=-1, norm_eval=False, init_cfg=None),
    bbox_head=dict(num_classes=len(metainfo['classes'])))

train_pipeline = [
    dict(type='LoadImageFromFile', backend_args=None),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=image_scale, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile', backend_args=None),
    dict(type='Resize', scale=image_scale, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor'))
]
# two cores: load in the main process (persistent_workers must be off with num_workers=0)
train_dataloader = dict(
    batch_size=batch_size, num_workers=0, persistent_workers=False,
    dataset=dict(data_root=data_root, metainfo=metainfo, pipeline=train_pipeline,
                 filter_cfg=dict(filter_empty_gt=True, min_size=0)))
val_dataloader = dict(
    batch_size=8, num_workers=0, persistent_workers=False,
    dataset=dict(data_root=data_root, metainfo=metainfo, pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val2017.json', classwise=True)
test_evaluator = val_evaluator

train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
# The CompConv demo's optimiser (chosen there: from scratch on 400 images AdamW converged in far fewer iterations
# than the COCO recipe's SGD); not tuned for DCD.
optim_wrapper = dict(
    optimizer=dict(_delete_=True, type='AdamW', lr=2e-4, weight_decay=0.05),
    clip_grad=dict(max_norm=35, norm_type=2))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=100),
    dict(type='CosineAnnealingLR', by_epoch=True, begin=0, end=max_epochs, eta_min=2e-6)
]
default_hooks = dict(logger=dict(interval=10), checkpoint=dict(interval=max_epochs))
randomness = dict(seed=0)
