# MicroNet-M2 (Li et al., ICCV 2021, arXiv 2108.05894) trained from scratch on ImageNet-1k with its official head.
# Recipe: liyunsheng13/micronet @ed89b26 scripts/train_micronet_m2_4gpu.sh + main.py + utils/dataloaders.py:
# SGD momentum 0.9 (no Nesterov), lr 0.2 at 512 images per batch (here 8 GPUs x 64), weight decay 3e-5 on every
# parameter (BN and biases included), no warmup, cosine to 0 per iteration, 600 epochs, no label smoothing
# (`--label-smoothing 0.0`), dropout 0.1 before the last linear, no mixup; RandomResizedCrop 224 (scale 0.08-1,
# bilinear) + horizontal flip; test: short side 256 -> centre crop 224; ImageNet mean/std.
# Aims at: 59.4 % top-1 (paper Table 7 / official README). Paper vs. script: liyunsheng13/micronet issue #28
# reports the script's lr is 10x the paper's text; the released scripts are followed here.
# Deviations: BN statistics are per GPU, 128 images in the official 4-GPU run, 64 here (8 x 64); the official
# loader normalises uint8 tensors on the GPU (same mean/std). Nothing else.
# The backbone is the same MicroNet (type, arch, BN) as configs/micronet/retinanet_micronet-m2_fpn_3x_coco.py, so the
# weights load there (only out_indices/frozen_stages/norm_eval/exclude_padding/init_cfg differ).
_base_ = ['./micronet-m0_in1k.py']

model = dict(
    backbone=dict(arch='m2'),
    head=dict(in_channels=768, hidden_channels=1024, dropout=0.1))
