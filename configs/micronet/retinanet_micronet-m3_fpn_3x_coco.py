# RetinaNet + FPN with MicroNet-M3 (Li et al., ICCV 2021; 2.6 M parameters / 21 M MACs as an ImageNet classifier,
# 0.71 M parameters without its classifier) on COCO in the paper's detection setting: 36 epochs (3x) from ImageNet
# weights. The paper (arXiv 2108.05894, Table 8, Detectron2) reports 25.4 mAP for this pair; no detection code was
# released, so this config is mmdet's recipe around the official backbone.
# What differs from mmdet 3.3.0's retinanet_r50_fpn_ms-640-800-3x_coco.py (multi-scale 640-800 training, 12 epochs
# over a 3x RepeatDataset = 36 epochs, steps at 27 and 33, SGD lr 0.01 at 16 images per batch): only the backbone
# and the FPN's in_channels (taps at strides 4/8/16/32 with 16/24/80/864 channels; the last one is the official
# final 1x1 expansion, 144 -> 864; RetinaNet's FPN starts at stride 8).
# Backbone: the official ImageNet weights, converted; stem and layer1 frozen and BN in eval mode as mmdet's
# ResNet recipe. The Dynamic Shift-Max contexts are pooled over each image's unpadded region (exclude_padding=True)
# instead of the whole zero-padded batch image the official classification code would average.
# Weights (two commands, from the repository root):
#   wget -P checkpoints https://svcl.ucsd.edu/projects/micronet/assets/micronet-m3.pth
#   python tools/model_converters/micronet_official.py checkpoints/micronet-m3.pth \
#       checkpoints/micronet-m3_official_converted.pth --arch m3
_base_ = ['mmdet::retinanet/retinanet_r50_fpn_ms-640-800-3x_coco.py']

custom_imports = dict(imports=['mmlight'], allow_failed_imports=False)

backbone_checkpoint = 'checkpoints/micronet-m3_official_converted.pth'
# printed by tools/train.py when the checkpoint is missing
backbone_init_help = ('wget -P checkpoints https://svcl.ucsd.edu/projects/micronet/assets/micronet-m3.pth && '
                      'python tools/model_converters/micronet_official.py checkpoints/micronet-m3.pth '
                      f'{backbone_checkpoint} --arch m3')

model = dict(
    backbone=dict(
        _delete_=True,
        type='MicroNet',
        arch='m3',
        out_indices=(0, 1, 2, 3),
        frozen_stages=1,
        norm_eval=True,
        exclude_padding=True,
        norm_cfg=dict(type='BN', requires_grad=True),
        init_cfg=dict(type='Pretrained', checkpoint=backbone_checkpoint, prefix='backbone.')),
    neck=dict(in_channels=[16, 24, 80, 864]))
