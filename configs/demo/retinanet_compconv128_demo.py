# The embedded demo: the flagship RetinaNet with the same CompConv128 ResNet-50, trained from scratch on the
# generated dataset in data/demo_coco (tools/misc/make_demo_dataset.py) on a 2-core CPU in minutes.
# What differs from the flagship (configs/retinanet_compconv128_coco.py), all for the CPU budget or the tiny data:
# - the data (5 shape classes, 400/100 images) and a 128x128 input;
# - a 128-channel FPN and head (mmdet's RetinaNet uses 256: at this input size its 2 x 4 stacked 3x3 head convs
#   over P3-P7 cost about three times the backbone; at 128 channels a quarter of that);
# - P3-P5 with square 16-101 px anchors for the 19-58 px objects, and 2 stacked head convs;
# - 6 epochs of AdamW (the COCO recipe's SGD reached mAP_50 0.39 in 12 epochs from scratch here);
# - a from-scratch backbone (no ImageNet weights: BN trains, no frozen stages).
# Run it with `bash tools/run_demo.sh`. The other demos (configs/demo/) inherit this file and swap the backbone.
_base_ = ['../retinanet_compconv128_coco.py']

data_root = 'data/demo_coco/'
# must match mmlight.datasets.demo_coco.CLASSES (a test checks it)
metainfo = dict(classes=('circle', 'square', 'triangle', 'ring', 'cross'),
                palette=[(220, 60, 60), (60, 170, 60), (60, 90, 220), (220, 170, 40), (170, 60, 200)])
image_scale = (128, 128)
max_epochs = 6
batch_size = 8
width = 128  # FPN and head channels

model = dict(
    backbone=dict(frozen_stages=-1, norm_eval=False, init_cfg=None),
    # P3-P5 only: at 128x128 input P6 and P7 are 2x2 and 1x1 maps whose anchors are larger than the image
    neck=dict(out_channels=width, num_outs=3, add_extra_convs=False),
    bbox_head=dict(
        num_classes=len(metainfo['classes']), in_channels=width, feat_channels=width, stacked_convs=2,
        # objects are 19-58 px at 128x128 with aspect ratios 0.75-1.33: square anchors of 16-101 px over strides
        # 8-32 give every object an anchor of IoU >= 0.5 (mmdet's 32-813 px anchors leave the small half with none)
        anchor_generator=dict(octave_base_scale=2, scales_per_octave=3, ratios=[1.0], strides=[8, 16, 32])))

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
optim_wrapper = dict(
    optimizer=dict(_delete_=True, type='AdamW', lr=4e-4, weight_decay=0.05),
    clip_grad=dict(max_norm=35, norm_type=2))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=50),
    dict(type='CosineAnnealingLR', by_epoch=True, begin=0, end=max_epochs, eta_min=2e-6)
]
default_hooks = dict(logger=dict(interval=10), checkpoint=dict(interval=max_epochs))
randomness = dict(seed=0)
