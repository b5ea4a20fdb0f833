# SqueezeNet 1.0 (Iandola et al., arXiv 1602.07360) trained from scratch on ImageNet-1k.
# Recipe: forresti/SqueezeNet @51147dc SqueezeNet_v1.0/solver.prototxt + train_val.prototxt (the same for 1.0 and
# 1.1): SGD momentum 0.9, lr 0.04 at 512 images per batch (Caffe: 32 x iter_size 16; here 8 GPUs x 64), weight decay
# 2e-4 on every parameter, "poly" power 1 (linear to 0 per iteration), no warmup, 170,000 iterations x 512 = 67.9
# epochs (68 here), no label smoothing, dropout 0.5 before the classifier; train: random 227 crop of the 256 x 256
# (warped) images, no flip; test: centre 227 crop.
# Aims at: 57.5 % top-1 / 80.3 % top-5 (paper Table 2; torchvision's port of the Caffe weights: 58.09 top-1).
# Deviations:
# * BN after every conv (the detection backbone's; the paper's network has none) and ImageNet mean/std in RGB
#   (the detectors' normalisation) instead of Caffe's BGR mean subtraction without scaling.
# * 256 x 256 warp: mmdet's Resize(keep_ratio=False) of each original image, as Caffe's LMDB build usually does
#   (that build is not in the official repo).
# * Classifier: global average pool -> dropout -> linear (LinearClsHead, N(0, 0.01) as conv10) instead of
#   dropout -> 1x1 conv10 -> ReLU -> average pool: the same linear map, without the ReLU on the logits; v1.0's
#   conv10 has pad 1 (a 1-pixel border holding only the bias enters the average), not reproduced.
# * 68 epochs instead of 67.9.
# The backbone is SqueezeNet 1.0 with BN after every conv, built as configs/squeezenet/*_squeezenet1.1_* build 1.1
# (there is no 1.0 detection config yet), so a 1.0 detector config written the same way loads these weights.
_base_ = ['./_base_/imagenet_bs64.py', './_base_/default_runtime.py']

model = dict(
    type='LightClassifier',
    backbone=dict(
        type='SqueezeNet',
        arch='1.0',
        out_indices=(2, ),
        frozen_stages=-1,
        norm_eval=False,
        norm_cfg=dict(type='BN', requires_grad=True),
        init_cfg=None),
    head=dict(type='LinearClsHead', in_channels=512, num_classes=1000, dropout=0.5, init_std=0.01),
    label_smoothing=0.0)

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(256, 256), keep_ratio=False),
    dict(type='RandomCrop', crop_size=(227, 227)),
    dict(type='PackClsInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(256, 256), keep_ratio=False),
    dict(type='CenterCrop', crop_size=227),
    dict(type='PackClsInputs'),
]
train_dataloader = dict(batch_size=64, dataset=dict(pipeline=train_pipeline))  # x 8 GPUs = 512
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader

optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.04, momentum=0.9, weight_decay=2e-4, nesterov=False))
param_scheduler = [
    dict(type='PolyLR', power=1.0, eta_min=0.0, by_epoch=True, begin=0, end=68, convert_to_iter_based=True),
]
train_cfg = dict(by_epoch=True, max_epochs=68, val_interval=1)
auto_scale_lr = dict(enable=False, base_batch_size=512)
