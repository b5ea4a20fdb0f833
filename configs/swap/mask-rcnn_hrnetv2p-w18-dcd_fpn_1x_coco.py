# Mask R-CNN 1x on COCO, mmdet 3.3.0's mask-rcnn_r50_fpn_1x_coco.py with an HRNetV2p-W18 backbone and HRFPN neck (as
# mmdet's mask-rcnn_hrnetv2p-w18-1x_coco.py builds them) whose branch convs become DCD by rule: both 3x3 convs of
# every BasicBlock of stages 2-4 (208 layers). The stem, the Bottlenecks of stage 1, the transitions between stages
# and the fuse layers that exchange the resolutions stay dense. Each DCD layer starts as the dense conv it replaces,
# so mmdet's ImageNet HRNetV2-W18 loads into W0 and the backbone starts exactly as the dense one.
# What differs from mmdet's config: the backbone and the neck (HRFPN on the 18/36/72/144 HRNet branches).
_base_ = 'mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py'

custom_imports = dict(imports=['mmlight'], allow_failed_imports=False)

model = dict(
    backbone=dict(
        _delete_=True,
        type='SwapConvs',
        backbone=dict(
            type='HRNet',
            extra=dict(
                stage1=dict(num_modules=1, num_branches=1, block='BOTTLENECK', num_blocks=(4, ), num_channels=(64, )),
                stage2=dict(num_modules=1, num_branches=2, block='BASIC', num_blocks=(4, 4), num_channels=(18, 36)),
                stage3=dict(
                    num_modules=4, num_branches=3, block='BASIC', num_blocks=(4, 4, 4), num_channels=(18, 36, 72)),
                stage4=dict(
                    num_modules=3,
                    num_branches=4,
                    block='BASIC',
                    num_blocks=(4, 4, 4, 4),
                    num_channels=(18, 36, 72, 144)))),
        rules=[dict(type='DCD', kernel_size=3, stages=(2, 3, 4), exclude=['fuse_layers'])],
        inherit=True,
        init_cfg=dict(type='Pretrained', checkpoint='open-mmlab://msra/hrnetv2_w18')),
    neck=dict(_delete_=True, type='HRFPN', in_channels=[18, 36, 72, 144], out_channels=256))
