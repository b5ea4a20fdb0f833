# Faster R-CNN R50-FPN 1x on COCO with every ResNet-50 conv built as CompConv128 (C0 = 128).
# Identical to mmdet 3.3.0's faster-rcnn_r50_fpn_1x_coco.py otherwise (data/coco, 12 epochs, SGD lr 0.02 at 16
# images per batch, frozen stem + stage 1, BN in eval mode).
# Initialisation: the backbone of mmlight's own ImageNet classifier (configs/imagenet/compconv128-r50_in1k.py,
# the same CompConv128 ResNet-50), extracted to checkpoints/compconv128-r50_in1k_backbone.pth by the commands in
# backbone_init_help, instead of mmdet's torchvision ResNet-50 (which fits only the stem, the BNs and the convs
# CompConv128 leaves plain); tools/train.py stops at once if the file is missing or does not fit the backbone.
_base_ = ['mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py']

custom_imports = dict(imports=['mmlight'], allow_failed_imports=False)

backbone_checkpoint = 'checkpoints/compconv128-r50_in1k_backbone.pth'
# printed by tools/train.py when the checkpoint is missing: train the ImageNet classifier, extract its backbone
backbone_init_help = ('python tools/train.py configs/imagenet/compconv128-r50_in1k.py && '
                      'python tools/model_converters/extract_backbone.py '
                      '$(cat work_dirs/compconv128-r50_in1k/last_checkpoint) ' + backbone_checkpoint)

model = dict(
    backbone=dict(
        conv_cfg=dict(type='CompConv128'),
        init_cfg=dict(type='Pretrained', prefix='backbone.', checkpoint=backbone_checkpoint)))
