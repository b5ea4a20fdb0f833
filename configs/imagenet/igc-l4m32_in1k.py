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
_base_ = ['./igc-l100m2_in1k.py']

model = dict(backbone=dict(arch='l4m32'), head=dict(in_channels=1024))
