# SqueezeNet 1.0 (Iandola et al., arXiv 1602.07360) trained from scratch on ImageNet-1k.
# Recipe: forresti/SqueezeNet @51147dc SqueezeNet_v1.0/solver.prototxt + train_val.prototxt (the same for 1.0 and
# 1.1): SGD momentum 0.9, lr 0.04 at 512 images per batch (Caffe: 32 x iter_size 16; here 8 GPUs x 64), weight decay
# 2e-4 on every parameter, "poly" power 1 (linear to 0 per iteration), no warmup, 170,000 iterations x 512 = 67.9
# epochs (68 here), no label smoothing, dropout 0.5 before the classifier; train: random 227 crop of the 256 x 256
# (warped) images, no flip; test: centre 227 crop.
# Aims at: 57.5 % top-1 / 80.3 % top-5 (paper Table 2; torchvision's port of the Caffe weights: 58.09 top-1).
# Deviations:
# * BN after every conv (the detection backbone's; the paper's network has none) and ImageNet mean/std in RGB
#   (the detectors' normalisation) instead of Caffe's BGR mean subtraction without scaling.
# * 256 x 256 warp: mmdet's Resize(keep_ratio=False) of each original image, as Caffe's LMDB build usually does
#   (that build is not in the official repo).
# * Classifier: global average pool -> dropout -> linear (LinearClsHead, N(0, 0.01) as conv10) instead of
#   dropout -> 1x1 conv10 -> ReLU -> average pool: the same linear map, without the ReLU on the logits; v1.0's
#   conv10 has pad 1 (a 1-pixel border holding only the bias enters the average), not reproduced.
# * 68 epochs instead of 67.9.
# The backbone is SqueezeNet 1.0 with BN after every conv, built as configs/squeezenet/*_squeezenet1.1_* build 1.1
# (there is no 1.0 detection config yet), so a 1.0 detector config written the same way loads these weights.
_base_ = ['./squeezenet1.1_in1k.py']

model = dict(backbone=dict(arch='1.0'))
