# Cascade R-CNN 1x on COCO, mmdet 3.3.0's cascade-rcnn_r50_fpn_1x_coco.py with YOLOX-S's CSPDarknet (deepen 0.33,
# widen 0.5) as backbone, its 3x3 convs made depthwise separable by rule: the downsampling conv of each stage and
# the 3x3 conv of every CSP bottleneck (12 layers; the Focus stem and the 1x1 convs stay dense), which is what
# CSPDarknet's own use_depthwise=True does, written as a rule. Trained from scratch (CSPDarknet has no ImageNet
# weights in mmdet), so nothing is inherited: a depthwise-separable conv cannot start as a dense conv anyway.
# What differs from mmdet's config: the backbone (stages 1-4 out, strides 4-32, as ResNet's) and the FPN in_channels.
_base_ = 'mmdet::cascade_rcnn/cascade-rcnn_r50_fpn_1x_coco.py'

custom_imports = dict(imports=['mmlight'], allow_failed_imports=False)

model = dict(
    backbone=dict(
        _delete_=True,
        type='SwapConvs',
        backbone=dict(type='CSPDarknet', deepen_factor=0.33, widen_factor=0.5, out_indices=(1, 2, 3, 4)),
        rules=[dict(type='DepthwiseSeparableConv', kernel_size=3, exclude=['stem'])],
        inherit=False),
    neck=dict(in_channels=[64, 128, 256, 512]))
