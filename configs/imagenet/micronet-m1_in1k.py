# MicroNet-M1 (Li et al., ICCV 2021, arXiv 2108.05894) trained from scratch on ImageNet-1k with its official head.
# Recipe: liyunsheng13/micronet @ed89b26 scripts/train_micronet_m1_4gpu.sh + main.py + utils/dataloaders.py:
# SGD momentum 0.9 (no Nesterov), lr 0.2 at 512 images per batch (here 8 GPUs x 64), weight decay 3e-5 on every
# parameter (BN and biases included), no warmup, cosine to 0 per iteration, 600 epochs, no label smoothing
# (`--label-smoothing 0.0`), dropout 0.05 before the last linear, no mixup; RandomResizedCrop 224 (scale 0.08-1,
# bilinear) + horizontal flip; test: short side 256 -> centre crop 224; ImageNet mean/std.
# Aims at: 51.4 % top-1 (paper Table 7 / official README). Paper vs. script: liyunsheng13/micronet issue #28
# reports the script's lr is 10x the paper's text; the released scripts are followed here.
# Deviations: BN statistics are per GPU, 128 images in the official 4-GPU run, 64 here (8 x 64); the official
# loader normalises uint8 tensors on the GPU (same mean/std). Nothing else.
# The backbone is the same MicroNet (type, arch, BN) as the M2/M3 detection configs use for their arch (there is no
# M1 detection config yet).
_base_ = ['./micronet-m0_in1k.py']

model = dict(
    backbone=dict(arch='m1'),
    head=dict(in_channels=576, hidden_channels=960, dropout=0.05))
