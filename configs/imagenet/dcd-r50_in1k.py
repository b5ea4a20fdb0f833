# DCD-ResNet-50 (dynamic convolution decomposition, Li et al., ICLR 2021, arXiv 2103.08756) trained from scratch on
# ImageNet-1k with the official dynamic classifier (DYCls, mmlight's DCDClsHead).
# Recipe: liyunsheng13/dcd @6a5e27f README "Train DCD on ImageNet" (`-a resnet50_dcd -b 256 --epochs 120
# --lr-decay schedule --lr 0.1 --wd 1e-4 --label-smoothing 0.1 --dropout 0.1 --mixup 0.2`) + main.py defaults:
# SGD momentum 0.9 (no Nesterov), lr 0.1 at 256 images per batch (here 8 GPUs x 32), weight decay 1e-4 on every
# parameter, lr x0.1 at epochs 30, 60, 90 (default `--schedule 30 60 90`), no warmup, 120 epochs, label smoothing
# 0.1, dropout 0.1 before the classifier, mixup alpha 0.2; RandomResizedCrop 224 + horizontal flip; test: short
# side 256 -> centre crop 224; ImageNet mean/std.
# Aims at: the paper's DCD ResNet-50 top-1 (not recovered from any stored source; about 78 % from memory -- check the
# paper's Table before citing it) and the released checkpoint (Google Drive, official README).
# Deviations (what mmlight's pieces cannot express):
# * mixup: alpha fixed at 0.2 from the first epoch; the official code ramps it, alpha_e = 0.2 * e / 100 for the
#   first 100 epochs (no mixup at epoch 0), then 0.2.
# * label smoothing: PyTorch's (eps / K to every class, 1 - eps + eps / K to the target) instead of the official
#   LabelSmoothingLoss (1 - eps to the target, eps / (K - 1) to every other class); a difference of eps / K.
# * BN statistics per GPU over 32 images (official: nn.DataParallel on 4 GPUs, 64 per chunk).
# * Init: BN weights 1 everywhere (zero_init_residual=False) as the official _initialize_weights; conv init is
#   DCDResNet's own.
# The backbone is the same DCDResNet (depth 50, BN) as configs/dcd/retinanet_dcd-r50_fpn_1x_coco.py, so the weights
# load there (out_indices/frozen_stages/norm_eval/init_cfg and the init-only zero_init_residual differ).
_base_ = ['./_base_/imagenet_bs64.py', './_base_/default_runtime.py']

model = dict(
    type='LightClassifier',
    backbone=dict(
        type='DCDResNet',
        depth=50,
        out_indices=(3, ),
        frozen_stages=-1,
        norm_cfg=dict(type='BN', requires_grad=True),
        norm_eval=False,
        zero_init_residual=False,
        exclude_padding=False,
        init_cfg=None),
    head=dict(type='DCDClsHead', in_channels=2048, num_classes=1000, dropout=0.1),
    label_smoothing=0.1,
    train_cfg=dict(mixup_alpha=0.2))

train_dataloader = dict(batch_size=32)  # x 8 GPUs = 256
val_dataloader = dict(batch_size=32)
test_dataloader = val_dataloader

optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=1e-4, nesterov=False))
param_scheduler = [dict(type='MultiStepLR', milestones=[30, 60, 90], gamma=0.1, by_epoch=True, begin=0, end=120)]
train_cfg = dict(by_epoch=True, max_epochs=120, val_interval=1)
auto_scale_lr = dict(enable=False, base_batch_size=256)
