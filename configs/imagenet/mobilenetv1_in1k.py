# MobileNetV1 1.0 (Howard et al., arXiv 1704.04861) trained from scratch on ImageNet-1k at 224.
# Recipe: the paper gives none in numbers (RMSprop with asynchronous gradient descent, as Inception V3; little or no
# weight decay on the depthwise filters, no label smoothing); this config follows the official TF-slim script,
# tensorflow/models research/slim/nets/mobilenet_v1_train.py: plain SGD (no momentum), lr 0.045 at 64 images per
# batch (here 8 GPUs x 8), lr x0.94 every 2.5 epochs, weight decay 4e-5 on the conv and pointwise weights only
# (depthwise, BN and biases not decayed: mobilenet_v1_arg_scope(regularize_depthwise=False)), no warmup, no label
# smoothing, dropout 0.001 before the classifier (keep_prob 0.999); Inception-style crop + flip; test: central 87.5 %
# crop resized to 224 (= short side 256 -> centre crop 224).
# Aims at: 70.6 % top-1 (paper Table 8, 569 M mult-adds, 4.2 M parameters); the slim release mobilenet_v1_1.0_224
# reaches 70.9 %.
# Deviations:
# * Length: the slim script runs until stopped (number_of_steps None); 200 epochs is our choice (the lr then has
#   decayed to 0.045 x 0.94^80 = 3.1e-4).
# * The staircase x0.94 every 2.5 epochs (a step in mid-epoch) becomes x0.94^(1/2.5) after every epoch
#   (ExponentialLR): the same lr at every multiple of 5 epochs, never more than 2.5 % away in between.
# * Augmentation: RandomResizedCrop 224 (scale 0.08-1) + flip instead of slim's Inception preprocessing (distorted
#   bounding-box crop, colour distortion); ImageNet mean/std (the detectors' normalisation) instead of [-1, 1].
# * BN: the detection backbone's (momentum 0.1, eps 1e-5) instead of slim's (decay 0.9997, eps 1e-3); 1000 classes
#   instead of slim's 1001 (background).
# The backbone is the same MobileNetV1 (x1.0, BN) as configs/mobilenet_v1/retinanet_mobilenetv1_fpn_1x_coco.py, so
# the weights load there (only out_indices / frozen_stages / norm_eval / init_cfg differ).
_base_ = ['./_base_/imagenet_bs64.py', './_base_/default_runtime.py']

model = dict(
    type='LightClassifier',
    backbone=dict(
        type='MobileNetV1',
        widen_factor=1.0,
        out_indices=(3, ),
        frozen_stages=-1,
        norm_eval=False,
        norm_cfg=dict(type='BN', requires_grad=True),
        init_cfg=None),
    head=dict(type='LinearClsHead', in_channels=1024, num_classes=1000, dropout=0.001),
    label_smoothing=0.0)

train_dataloader = dict(batch_size=8)  # x 8 GPUs = 64

optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.045, momentum=0.0, weight_decay=4e-5),
    paramwise_cfg=dict(norm_decay_mult=0.0, dwconv_decay_mult=0.0, bias_decay_mult=0.0))
param_scheduler = [
    dict(type='ExponentialLR', gamma=0.94**(1 / 2.5), by_epoch=True, begin=0, end=200),
]
train_cfg = dict(by_epoch=True, max_epochs=200, val_interval=1)
auto_scale_lr = dict(enable=False, base_batch_size=64)
