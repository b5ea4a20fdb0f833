# FCOS 1x on COCO, mmdet 3.3.0's fcos_r50-caffe_fpn_gn-head_1x_coco.py with a RegNetX-800MF backbone (as mmdet's
# regnet configs build it) whose 1x1 convs become DCD by rule: the first and last conv of every block of stages 2-4
# (30 layers). RegNet's 3x3 convs are grouped (16 channels a group), where DCD would only fall back to a plain conv,
# so the rule leaves them out by kernel size; the stem, stage 1 (frozen) and the downsample projections stay dense.
# Each DCD layer starts as the dense conv it replaces, so mmdet's ImageNet RegNetX-800MF loads into W0 and the
# backbone starts exactly as the dense one.
# What differs from mmdet's config: the backbone, its ImageNet weights and input normalisation (mmdet's regnet
# configs' pycls mean/std), and the FPN in_channels (RegNetX-800MF's stage widths).
_base_ = 'mmdet::fcos/fcos_r50-caffe_fpn_gn-head_1x_coco.py'

custom_imports = dict(imports=['mmlight'], allow_failed_imports=False)

model = dict(
    data_preprocessor=dict(mean=[103.53, 116.28, 123.675], std=[57.375, 57.12, 58.395], bgr_to_rgb=False),
    backbone=dict(
        _delete_=True,
        type='SwapConvs',
        backbone=dict(
            type='RegNet',
            arch='regnetx_800mf',
            out_indices=(0, 1, 2, 3),
            frozen_stages=1,
            norm_cfg=dict(type='BN', requires_grad=True),
            norm_eval=True,
            style='pytorch'),
        rules=[dict(type='DCD', kernel_size=1, stages=(2, 3, 4), exclude=['downsample'])],
        inherit=True,
        init_cfg=dict(type='Pretrained', checkpoint='open-mmlab://regnetx_800mf')),
    neck=dict(in_channels=[64, 128, 288, 672]))
