# Xception (Chollet, CVPR 2017, arXiv 1610.02357) trained from scratch on ImageNet-1k at 299 x 299.
# Recipe: the paper, §4.3-4.5 (no official training code; the paper text as quoted in a secondary source -- check the
# PDF before citing): SGD momentum 0.9, lr 0.045 decayed x0.94 every 2 epochs (Inception V3's setting, not re-tuned),
# weight decay 1e-5, dropout 0.5 before the logistic regression layer, no auxiliary tower, input 299.
# Aims at: 79.0 % top-1 / 94.5 % top-5 (paper Table 1; timm's Keras port: 78.89 %).
# Deviations / choices:
# * Batch size and length are not in the paper (60 K80 GPUs, synchronous SGD, about 3 days): 256 (8 GPUs x 32) at
#   lr 0.045 and 100 epochs are our choice (the lr then has decayed to 0.045 x 0.94^50 = 2.0e-3).
# * Weight decay on every parameter (which parameters the paper decays is not stated).
# * Augmentation: RandomResizedCrop 299 + flip (Inception-style crop without colour distortion); test: short side
#   333 -> centre crop 299 (crop ratio 0.8975, timm's); ImageNet mean/std (the detectors' normalisation) instead
#   of the Keras model's [-1, 1].
# The backbone is the same Xception (BN) as configs/xception/retinanet_xception_fpn_1x_coco.py, so the weights load
# there (only out_indices / frozen_stages / norm_eval / init_cfg differ).
_base_ = ['./_base_/imagenet_bs64.py', './_base_/default_runtime.py']

model = dict(
    type='LightClassifier',
    backbone=dict(
        type='Xception',
        out_indices=(3, ),
        frozen_stages=-1,
        norm_eval=False,
        norm_cfg=dict(type='BN', requires_grad=True),
        init_cfg=None),
    head=dict(type='LinearClsHead', in_channels=2048, num_classes=1000, dropout=0.5),
    label_smoothing=0.0)

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomResizedCrop', scale=299),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackClsInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ResizeEdge', scale=333, edge='short'),
    dict(type='CenterCrop', crop_size=299),
    dict(type='PackClsInputs'),
]
train_dataloader = dict(batch_size=32, dataset=dict(pipeline=train_pipeline))  # x 8 GPUs = 256
val_dataloader = dict(batch_size=32, dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader

optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.045, momentum=0.9, weight_decay=1e-5, nesterov=False))
param_scheduler = [
    dict(type='StepLR', step_size=2, gamma=0.94, by_epoch=True, begin=0, end=100),
]
train_cfg = dict(by_epoch=True, max_epochs=100, val_interval=1)
auto_scale_lr = dict(enable=False, base_batch_size=256)
