# RetinaNet R50-FPN 1x on COCO with every ResNet-50 conv built as CompConv128 (C0 = 128).
# Identical to mmdet 3.3.0's retinanet_r50_fpn_1x_coco.py otherwise: data (data/coco), schedule (12 epochs,
# SGD lr 0.01 at 16 images per batch), backbone init from torchvision's ResNet-50 (see the README's note on
# what that loads into a CompConv backbone), frozen stem + stage 1, BN in eval mode.
_base_ = ['mmdet::retinanet/retinanet_r50_fpn_1x_coco.py']

custom_imports = dict(imports=['mmlight'], allow_failed_imports=False)

# conv_cfg reaches the stem, the three convs of every Bottleneck and the downsample convs; CompConv128 picks
# the recursion depth per layer from its input width and stays a plain conv where compression is pointless
# (the 3-channel stem, 1x1 convs that expand their input).
model = dict(backbone=dict(conv_cfg=dict(type='CompConv128')))
