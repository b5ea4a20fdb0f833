# DCD-MobileNetV2 x1.0 (dynamic convolution decomposition, Li et al., ICLR 2021, arXiv 2103.08756; squeeze ratio
# 16) trained from scratch on ImageNet-1k with the official dynamic classifier (DYCls, mmlight's DCDClsHead).
# Recipe: liyunsheng13/dcd @6a5e27f README "Train DCD on ImageNet" (`-a mobilenetv2_dcd --epochs 300 --lr-decay cos
# --lr 0.1 --wd 2e-5 --width-mult 1.0 --label-smoothing 0.1 --dropout 0.2 -b 512 --mixup 0.2 --fc-squeeze 16`) +
# main.py: SGD momentum 0.9 (no Nesterov), lr 0.1 at 512 images per batch (here 8 GPUs x 64), weight decay 2e-5 on
# every parameter, cosine to 0 per iteration, no warmup, 300 epochs, label smoothing 0.1, dropout 0.2 before the
# classifier, mixup alpha 0.2; RandomResizedCrop 224 + horizontal flip; test: short side 256 -> centre crop 224;
# ImageNet mean/std.
# Aims at: the paper's DCD MobileNetV2 x1.0 top-1 (not recovered from any stored source; about 75.2 % from memory --
# check the paper's Table before citing it) and the released checkpoint (Google Drive, official README).
# Deviations (what mmlight's pieces cannot express):
# * mixup: alpha fixed at 0.2 from the first epoch; the official code ramps it, alpha_e = 0.2 * e / 100 for the
#   first 100 epochs (no mixup at epoch 0), then 0.2.
# * label smoothing: PyTorch's (eps / K to every class) instead of the official LabelSmoothingLoss (eps / (K - 1)
#   to every other class).
# * BN statistics per GPU over 64 images (official: nn.DataParallel on 4 GPUs, 128 per chunk).
# The backbone is the same DCDMobileNetV2 (x1.0, squeeze ratio 16, BN) as configs/dcd/retinanet_dcd-mbv2_fpn_1x_coco.py,
# so the weights load there (only out_indices/frozen_stages/norm_eval/init_cfg differ); its last stage ends with the
# 1280-channel 1x1 conv that feeds the classifier.
_base_ = ['./_base_/imagenet_bs64.py', './_base_/default_runtime.py']

model = dict(
    type='LightClassifier',
    backbone=dict(
        type='DCDMobileNetV2',
        widen_factor=1.0,
        squeeze_ratio=16,
        out_indices=(3, ),
        frozen_stages=-1,
        norm_cfg=dict(type='BN', requires_grad=True),
        norm_eval=False,
        exclude_padding=False,
        init_cfg=None),
    head=dict(type='DCDClsHead', in_channels=1280, num_classes=1000, dropout=0.2),
    label_smoothing=0.1,
    train_cfg=dict(mixup_alpha=0.2))

train_dataloader = dict(batch_size=64)  # x 8 GPUs = 512

optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=2e-5, nesterov=False))
param_scheduler = [
    dict(type='CosineAnnealingLR', T_max=300, eta_min=0.0, by_epoch=True, begin=0, end=300,
         convert_to_iter_based=True),
]
train_cfg = dict(by_epoch=True, max_epochs=300, val_interval=1)
auto_scale_lr = dict(enable=False, base_batch_size=512)
