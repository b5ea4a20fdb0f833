# ShuffleNetV1 1x, g = 3 (Zhang et al., CVPR 2018, arXiv 1707.01083) trained from scratch on ImageNet-1k.
# Recipe: Megvii's official PyTorch code, megvii-model/ShuffleNet-Series @aa91feb ShuffleNetV1/train.py (the paper's
# §4 setting: lr 0.5 at batch 1024 decayed linearly to 0 over 3e5 iterations, weight decay 4e-5): SGD momentum 0.9,
# lr 0.5 at 1024 images per batch (here 8 GPUs x 128), weight decay 4e-5 on weights with ndim > 1 only (BN and
# biases not decayed), lr linear to 0 per iteration, no warmup, 3e5 iterations = 239.8 epochs (240 here), label
# smoothing 0.1, no dropout; RandomResizedCrop 224 + ColorJitter(0.4, 0.4, 0.4) + flip; test: short side 256 ->
# centre crop 224.
# Aims at: 67.8 % top-1 (32.2 % error of the official 1.0x g3 model; the paper's table gives about 32.6 % error).
# Deviations:
# * No ColorJitter (no such transform among mmcv/mmdet/mmlight's; mmpretrain's config leaves it out too).
# * No final BN-statistics pass (the official "bn_process": 1250 iterations at lr 0 after training).
# * ImageNet mean/std in RGB (the detectors' normalisation) instead of raw 0-255 BGR inputs.
# * The classifier linear has a bias (official: bias=False).
# The backbone is the same ShuffleNetV1 (g 3, x1.0, BN) as
# configs/shufflenet_v1/retinanet_shufflenetv1-1x-g3_fpn_1x_coco.py, so the weights load there (only out_indices /
# frozen_stages / norm_eval / init_cfg differ).
_base_ = ['./_base_/imagenet_bs64.py', './_base_/default_runtime.py']

model = dict(
    type='LightClassifier',
    backbone=dict(
        type='ShuffleNetV1',
        groups=3,
        widen_factor=1.0,
        out_indices=(3, ),
        frozen_stages=-1,
        norm_eval=False,
        norm_cfg=dict(type='BN', requires_grad=True),
        init_cfg=None),
    head=dict(type='LinearClsHead', in_channels=960, num_classes=1000, dropout=0.0),
    label_smoothing=0.1)

train_dataloader = dict(batch_size=128)  # x 8 GPUs = 1024

optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.5, momentum=0.9, weight_decay=4e-5, nesterov=False),
    paramwise_cfg=dict(norm_decay_mult=0.0, bias_decay_mult=0.0))
param_scheduler = [
    dict(type='PolyLR', power=1.0, eta_min=0.0, by_epoch=True, begin=0, end=240, convert_to_iter_based=True),
]
train_cfg = dict(by_epoch=True, max_epochs=240, val_interval=1)
auto_scale_lr = dict(enable=False, base_batch_size=1024)
