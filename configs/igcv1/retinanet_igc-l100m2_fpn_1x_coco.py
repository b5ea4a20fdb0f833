# RetinaNet + FPN, 1x schedule on COCO, with the IGC-L100M2 network of IGCV1 (interleaved group convolutions,
# Zhang et al., ICCV 2017) as backbone: ResNet-18 layout, every 3x3 conv an IGC block with M = 2 secondary
# partitions and L = 100/200/400/800 primary ones; 8.61 M parameters with its ImageNet classifier (~7.0 M without).
# What differs from mmdet 3.3.0's retinanet_r50_fpn_1x_coco.py: only the backbone and the FPN's in_channels (the
# four stages at strides 4, 8, 16, 32 have 200/400/800/1600 channels; as for ResNet-50, RetinaNet's FPN starts at
# stride 8). Data, schedule (12 epochs, SGD lr 0.01 at 16 images per batch) and head are mmdet's.
# Initialisation: mmlight has no ImageNet weights for IGCV1 yet (a later issue), so the backbone is trained from
# scratch -- init_cfg=None (Kaiming stem/shortcut convs, variance-preserving IGC kernels, BN weight 1), nothing
# frozen (frozen_stages=-1) and BN statistics updated (norm_eval=False) -- unlike mmdet's recipe, which loads
# torchvision's ResNet-50, freezes the stem and stage 1 and keeps BN in eval mode. A 1x schedule from scratch is
# far from converged; expect much lower mAP than the ImageNet-initialised R50 baseline.
_base_ = ['mmdet::retinanet/retinanet_r50_fpn_1x_coco.py']

custom_imports = dict(imports=['mmlight'], allow_failed_imports=False)

model = dict(
    backbone=dict(
        _delete_=True,
        type='IGCV1',
        arch='l100m2',
        out_indices=(0, 1, 2, 3),
        frozen_stages=-1,
        norm_eval=False,
        norm_cfg=dict(type='BN', requires_grad=True),
        init_cfg=None),
    neck=dict(in_channels=[200, 400, 800, 1600]))
