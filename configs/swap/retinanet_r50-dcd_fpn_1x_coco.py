# RetinaNet R50-FPN 1x on COCO, mmdet 3.3.0's retinanet_r50_fpn_1x_coco.py with the ResNet-50 convs swapped by rule:
# every conv of every Bottleneck of the trained stages 2-4 becomes DCD (39 layers; the official DCD-ResNet also
# makes all three Bottleneck convs dynamic), the 7x7 stem, stage 1 (frozen by mmdet's recipe) and the downsample
# projections stay dense. Each DCD layer starts as the dense conv it replaces (W0 = its kernel, Lambda = 1, P = 0),
# so torchvision's ImageNet ResNet-50 loads into W0 and the detector starts exactly as mmdet's.
# What differs from mmdet's config: the backbone's type (SwapConvs around the same ResNet) and the address of the
# same torchvision weights (by URL, which needs no torchvision; mmdet writes torchvision://resnet50).
# Data, schedule (12 epochs, SGD lr 0.01 at 16 images per batch), neck and head are mmdet's.
_base_ = 'mmdet::retinanet/retinanet_r50_fpn_1x_coco.py'

custom_imports = dict(imports=['mmlight'], allow_failed_imports=False)

model = dict(
    backbone=dict(
        _delete_=True,
        type='SwapConvs',
        backbone=dict(
            type='ResNet',
            depth=50,
            num_stages=4,
            out_indices=(0, 1, 2, 3),
            frozen_stages=1,
            norm_cfg=dict(type='BN', requires_grad=True),
            norm_eval=True,
            style='pytorch'),
        rules=[dict(type='DCD', stages=(2, 3, 4), exclude=['downsample'])],
        inherit=True,
        init_cfg=dict(type='Pretrained', checkpoint='https://download.pytorch.org/models/resnet50-0676ba61.pth')))
