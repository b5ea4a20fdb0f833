# RetinaNet + FPN with MicroNet-M2 (Li et al., ICCV 2021; 2.4 M parameters / 12 M MACs as an ImageNet classifier,
# 0.58 M parameters without its classifier) on COCO in the paper's detection setting: 36 epochs (3x) from ImageNet
# weights. The paper (arXiv 2108.05894, Table 8, Detectron2) reports 22.6 mAP for this pair; no detection code was
# released, so this config is mmdet's recipe around the official backbone.
# What differs from mmdet 3.3.0's retinanet_r50_fpn_ms-640-800-3x_coco.py (multi-scale 640-800 training, 12 epochs
# over a 3x RepeatDataset = 36 epochs, steps at 27 and 33, SGD lr 0.01 at 16 images per batch): only the backbone
# and the FPN's in_channels (taps at strides 4/8/16/32 with 12/24/64/768 channels; the last one is the official
# final 1x1 expansion, 128 -> 768; RetinaNet's FPN starts at stride 8).
# Backbone: the official ImageNet weights, converted; stem and layer1 frozen and BN in eval mode as mmdet's
# ResNet recipe. The Dynamic Shift-Max contexts are pooled over each image's unpadded region (exclude_padding=True)
# instead of the whole zero-padded batch image the official classification code would average.
# Everything else as retinanet_micronet-m3_fpn_3x_coco.py (inherited); weights: see backbone_init_help.
_base_ = ['./retinanet_micronet-m3_fpn_3x_coco.py']

backbone_checkpoint = 'checkpoints/micronet-m2_official_converted.pth'
backbone_init_help = ('wget -P checkpoints https://svcl.ucsd.edu/projects/micronet/assets/micronet-m2.pth && '
                      'python tools/model_converters/micronet_official.py checkpoints/micronet-m2.pth '
                      f'{backbone_checkpoint} --arch m2')

model = dict(
    backbone=dict(arch='m2', init_cfg=dict(checkpoint=backbone_checkpoint)),
    neck=dict(in_channels=[12, 24, 64, 768]))
