# The mmpretrain idiom: an mmlight backbone inside mmpretrain's ImageClassifier (where mmpretrain imports, i.e. a
# machine with a torchvision matching its torch; not this project's CPU stack, see the README). mmlight's backbones
# are registered in mmdet's MODELS, so under mmpretrain's default scope they are named 'mmdet.<Backbone>'; the conv
# layers (CompConv, DCD, IGC, ...) are in mmengine's root MODELS and resolve from any scope. The rest is
# mmpretrain's: its ImageNet pipeline, schedule, runtime, GlobalAveragePooling and LinearClsHead (mmlight's
# MicroNetHead / DCDClsHead are plain modules for mmlight's LightClassifier, not mmpretrain heads).
# The backbone's weights land under backbone.*, as with configs/imagenet/micronet-m3_in1k.py, so
# tools/model_converters/extract_backbone.py and the detection configs take its checkpoints unchanged.
# Run with mmpretrain's tools/train.py (or this repository's, which only adds mmlight's registration).
_base_ = [
    'mmpretrain::_base_/datasets/imagenet_bs64_swin_224.py',
    'mmpretrain::_base_/schedules/imagenet_bs256.py',
    'mmpretrain::_base_/default_runtime.py',
]
custom_imports = dict(imports=['mmlight', 'mmpretrain.models'], allow_failed_imports=False)

model = dict(
    type='ImageClassifier',
    backbone=dict(type='mmdet.MicroNet', arch='m3', out_indices=(3, )),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='LinearClsHead',
        num_classes=1000,
        in_channels=864,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
        topk=(1, 5)))
