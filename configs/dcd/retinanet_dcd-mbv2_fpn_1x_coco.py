# RetinaNet + FPN, 1x schedule on COCO, with DCD-MobileNetV2 x1.0 (dynamic convolution decomposition, Li et al.,
# ICLR 2021, arXiv 2103.08756; official placement: both 1x1 convs of every inverted residual with expansion 6
# dynamic, squeeze ratio 16 as the released checkpoint; 4.26 M backbone parameters) as backbone.
# What differs from mmdet 3.3.0's retinanet_r50_fpn_1x_coco.py: the backbone (DCDMobileNetV2 with mmdet's
# frozen_stages=1 / norm_eval=True / BN, initialised from the official DCD ImageNet weights converted to its keys)
# and the FPN's in_channels: the taps at strides 4, 8, 16, 32 are the ends of the 24-, 32- and 96-channel blocks
# and the final 1x1 conv (1280 channels), mmdet MobileNetV2's out_indices=(1, 2, 4, 7); as for ResNet-50,
# RetinaNet's FPN starts at stride 8. Data, schedule (12 epochs, SGD lr 0.01 at 16 images per batch) and head are
# mmdet's. The DCD contexts pool over the whole padded image, as the official code does (exclude_padding=False).
# The backbone checkpoint is produced by the two commands in backbone_init_help (download, convert); tools/train.py
# stops with them when the file is missing. To train from scratch instead: init_cfg=None, frozen_stages=-1,
# norm_eval=False.
_base_ = ['mmdet::retinanet/retinanet_r50_fpn_1x_coco.py']

custom_imports = dict(imports=['mmlight'], allow_failed_imports=False)

backbone_checkpoint = 'checkpoints/dcd-mbv2_official_converted.pth'
backbone_init_help = (
    'mkdir -p checkpoints && pip install gdown && '
    'gdown "https://drive.google.com/uc?id=1Nc8VsUTpm8NwWthwJUD75deJCbE_LHvk" '
    '-O checkpoints/mv2x1.0_dcd.pth.tar && python tools/model_converters/dcd_official.py '
    f'checkpoints/mv2x1.0_dcd.pth.tar {backbone_checkpoint}')

model = dict(
    backbone=dict(
        _delete_=True,
        type='DCDMobileNetV2',
        widen_factor=1.0,
        squeeze_ratio=16,
        out_indices=(0, 1, 2, 3),
        frozen_stages=1,
        norm_cfg=dict(type='BN', requires_grad=True),
        norm_eval=True,
        init_cfg=dict(type='Pretrained', checkpoint=backbone_checkpoint, prefix='backbone.')),
    neck=dict(in_channels=[24, 32, 96, 1280]))
