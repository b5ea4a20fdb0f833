# Faster R-CNN R50-FPN 1x on COCO with every ResNet-50 conv built as CompConv128 (C0 = 128).
# Identical to mmdet 3.3.0's faster-rcnn_r50_fpn_1x_coco.py otherwise (data/coco, 12 epochs, SGD lr 0.02 at 16
# images per batch, torchvision ResNet-50 init, frozen stem + stage 1, BN in eval mode).
_base_ = ['mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py']

custom_imports = dict(imports=['mmlight'], allow_failed_imports=False)

model = dict(backbone=dict(conv_cfg=dict(type='CompConv128')))
