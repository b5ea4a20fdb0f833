# RetinaNet with a SqueezeNet 1.1 backbone (BN after every conv) and FPN, 1x schedule on COCO.
# Differences from mmdet 3.3.0's retinanet_r50_fpn_1x_coco.py:
# * backbone: SqueezeNet 1.1 with BN after every conv (the paper's network has none).
# * Initialisation: the backbone of mmlight's own ImageNet classifier (configs/imagenet/squeezenet1.1_in1k.py),
#   extracted to checkpoints/squeezenet1.1_in1k_backbone.pth by the commands in backbone_init_help; tools/train.py
#   stops at once if the file is missing or does not fit the backbone. Stem and stage 1 frozen and BN in eval
#   mode, as mmdet's recipe with an ImageNet backbone.
# * SqueezeNet stops at stride 16 (there is no stride-32 stage). RetinaNet's levels are strides 8..128: the FPN
#   takes the stride-8 and stride-16 maps (layer2, layer3) and builds stride 32, 64 and 128 with its extra stride-2
#   3x3 convs, the first one on the stride-16 backbone map ('on_input'), so the head keeps its five levels and
#   anchor strides unchanged.
# Data, schedule (12 epochs, SGD lr 0.01 at 16 images per batch) and head are mmdet's.
_base_ = ['mmdet::retinanet/retinanet_r50_fpn_1x_coco.py']

custom_imports = dict(imports=['mmlight'], allow_failed_imports=False)

backbone_checkpoint = 'checkpoints/squeezenet1.1_in1k_backbone.pth'
# printed by tools/train.py when the checkpoint is missing: train the ImageNet classifier, extract its backbone
backbone_init_help = ('python tools/train.py configs/imagenet/squeezenet1.1_in1k.py && '
                      'python tools/model_converters/extract_backbone.py '
                      '$(cat work_dirs/squeezenet1.1_in1k/last_checkpoint) ' + backbone_checkpoint)

model = dict(
    backbone=dict(
        _delete_=True,
        type='SqueezeNet',
        arch='1.1',
        out_indices=(1, 2),  # strides 8, 16
        frozen_stages=1,
        norm_eval=True,
        norm_cfg=dict(type='BN', requires_grad=True),
        init_cfg=dict(type='Pretrained', prefix='backbone.', checkpoint=backbone_checkpoint)),
    neck=dict(in_channels=[256, 512], start_level=0, add_extra_convs='on_input', num_outs=5))
