# ruff: noqa: E501  (one line per case reads better than wrapped MXNet calls)
"""Each supported operator and its attribute variants against MXNet 1.9.1's executor.

Every case is a small symbol built by MXNet, saved with random parameters, and
run by MXNet's executor (see ``mxnet_symbols``); the imported torch module must
reproduce its outputs (float32, 1e-5 relative to the output's scale).
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import mxparams.torch as mxt  # noqa: E402
from mxnet_symbols import Case, generate  # noqa: E402

pytestmark = [pytest.mark.mxnet, pytest.mark.torch]

IMG = {"data": (2, 4, 7, 7)}
VEC = {"data": (3, 10)}
POS = {"data": (0.1, 2.0, False)}


def _c(
    name: str, code: str, shapes: dict[str, tuple[int, ...]] | None = None, **kw: object
) -> Case:
    return Case(name, code if "out =" in code else f"out = {code}", shapes or IMG, **kw)  # type: ignore[arg-type]


CASES: list[Case] = [
    # convolution family
    _c("conv", "mx.sym.Convolution(data, kernel=(3, 3), num_filter=5)"),
    _c(
        "conv_stride_pad_dilate",
        "mx.sym.Convolution(data, kernel=(3, 2), stride=(2, 1), pad=(1, 2), dilate=(2, 1), num_filter=3)",
    ),
    _c(
        "conv_group_nobias",
        "mx.sym.Convolution(data, kernel=(1, 1), num_filter=8, num_group=2, no_bias=True)",
    ),
    _c(
        "conv_depthwise",
        "mx.sym.Convolution(data, kernel=(3, 3), pad=(1, 1), num_filter=4, num_group=4)",
    ),
    _c(
        "conv1d",
        "mx.sym.Convolution(data, kernel=(3,), stride=(2,), num_filter=3)",
        {"data": (2, 4, 9)},
    ),
    _c(
        "conv3d",
        "mx.sym.Convolution(data, kernel=(2, 2, 2), num_filter=3)",
        {"data": (1, 2, 4, 5, 5)},
    ),
    _c("deconv", "mx.sym.Deconvolution(data, kernel=(3, 3), stride=(2, 2), num_filter=3)"),
    _c(
        "deconv_pad_adj_bias",
        "mx.sym.Deconvolution(data, kernel=(4, 4), stride=(2, 2), pad=(1, 1), adj=(1, 1), num_filter=2, no_bias=False)",
    ),
    _c(
        "deconv_group",
        "mx.sym.Deconvolution(data, kernel=(2, 2), stride=(2, 2), num_filter=4, num_group=2)",
    ),
    # fully connected
    _c("fc", "mx.sym.FullyConnected(data, num_hidden=6)"),
    _c("fc_noflatten", "mx.sym.FullyConnected(data, num_hidden=6, flatten=False)"),
    _c("fc_nobias", "mx.sym.FullyConnected(data, num_hidden=6, no_bias=True)", VEC),
    # normalisation
    _c("bn_default_fix_gamma", "mx.sym.BatchNorm(data)", train=True),
    _c("bn_gamma", "mx.sym.BatchNorm(data, fix_gamma=False, eps=1e-5, momentum=0.8)", train=True),
    _c(
        "bn_global_stats",
        "mx.sym.BatchNorm(data, fix_gamma=False, use_global_stats=True)",
        train=True,
    ),
    _c(
        "bn_axis_last",
        "mx.sym.BatchNorm(data, fix_gamma=False, axis=-1)",
        {"data": (3, 5, 6)},
        train=True,
    ),
    _c("bn_2d", "mx.sym.BatchNorm(data, fix_gamma=False)", VEC),
    _c("instance_norm", "mx.sym.InstanceNorm(data, eps=1e-3)"),
    _c("layer_norm", "mx.sym.LayerNorm(data, axis=1)"),
    _c("l2norm_instance", "mx.sym.L2Normalization(data)"),
    _c("l2norm_channel", "mx.sym.L2Normalization(data, mode='channel')"),
    _c("l2norm_spatial", "mx.sym.L2Normalization(data, mode='spatial', eps=1e-6)"),
    _c("lrn", "mx.sym.LRN(data, nsize=3, alpha=0.001, beta=0.75, knorm=1.5)"),
    # activations
    *[
        _c(f"act_{a}", f"mx.sym.Activation(data, act_type='{a}')")
        for a in ("relu", "sigmoid", "tanh", "softrelu", "softsign")
    ],
    _c("leaky", "mx.sym.LeakyReLU(data, act_type='leaky', slope=0.1)"),
    _c("prelu", "mx.sym.LeakyReLU(data, act_type='prelu', gamma=V('g', shape=(4,)))"),
    _c("prelu_scalar", "mx.sym.LeakyReLU(data, act_type='prelu', gamma=V('g', shape=(1,)))"),
    _c("elu", "mx.sym.LeakyReLU(data, act_type='elu', slope=0.7)"),
    _c("selu", "mx.sym.LeakyReLU(data, act_type='selu')"),
    _c("gelu", "mx.sym.LeakyReLU(data, act_type='gelu')"),
    _c("rrelu_eval", "mx.sym.LeakyReLU(data, act_type='rrelu', lower_bound=0.1, upper_bound=0.3)"),
    _c("hard_sigmoid", "mx.sym.hard_sigmoid(data, alpha=0.3, beta=0.4)"),
    _c("clip", "mx.sym.clip(data, a_min=-0.3, a_max=0.5)"),
    # pooling
    _c("pool_max_valid", "mx.sym.Pooling(data, kernel=(3, 3), stride=(2, 2), pool_type='max')"),
    _c(
        "pool_max_full",
        "mx.sym.Pooling(data, kernel=(2, 2), stride=(2, 2), pool_type='max', pooling_convention='full')",
    ),
    _c(
        "pool_max_full_pad",
        "mx.sym.Pooling(data, kernel=(3, 3), stride=(2, 2), pad=(1, 1), pool_type='max', pooling_convention='full')",
        {"data": (2, 3, 8, 8)},
    ),
    _c(
        "pool_avg_valid_pad",
        "mx.sym.Pooling(data, kernel=(3, 3), stride=(2, 2), pad=(1, 1), pool_type='avg')",
    ),
    _c(
        "pool_avg_nopadcount",
        "mx.sym.Pooling(data, kernel=(3, 3), stride=(2, 2), pad=(1, 1), pool_type='avg', count_include_pad=False)",
    ),
    _c(
        "pool_avg_full",
        "mx.sym.Pooling(data, kernel=(3, 3), stride=(2, 2), pool_type='avg', pooling_convention='full')",
        {"data": (2, 3, 8, 8)},
    ),
    _c(
        "pool_avg_full_pad",
        "mx.sym.Pooling(data, kernel=(3, 3), stride=(2, 2), pad=(1, 1), pool_type='avg', pooling_convention='full')",
        {"data": (2, 3, 8, 8)},
    ),
    _c(
        "pool_avg_full_pad_nocount",
        "mx.sym.Pooling(data, kernel=(3, 3), stride=(2, 2), pad=(1, 1), pool_type='avg', pooling_convention='full', count_include_pad=False)",
        {"data": (2, 3, 8, 8)},
    ),
    _c("pool_sum", "mx.sym.Pooling(data, kernel=(2, 2), stride=(1, 1), pool_type='sum')"),
    _c(
        "pool_lp2",
        "mx.sym.Pooling(data, kernel=(2, 2), stride=(2, 2), pool_type='lp', p_value=2)",
        ranges={"data": (0.1, 1.0, False)},
    ),
    _c("pool_global_avg", "mx.sym.Pooling(data, kernel=(1, 1), global_pool=True, pool_type='avg')"),
    _c("pool_global_max", "mx.sym.Pooling(data, kernel=(1, 1), global_pool=True, pool_type='max')"),
    _c("pool_global_sum", "mx.sym.Pooling(data, global_pool=True, pool_type='sum', kernel=(2, 2))"),
    _c(
        "pool_1d_avg",
        "mx.sym.Pooling(data, kernel=(3,), stride=(1,), pool_type='avg')",
        {"data": (2, 3, 10)},
    ),
    _c(
        "pool_3d_max",
        "mx.sym.Pooling(data, kernel=(2, 2, 2), stride=(2, 2, 2), pool_type='max')",
        {"data": (1, 2, 4, 6, 6)},
    ),
    # upsampling, embedding, dropout
    _c("upsample_nearest", "mx.sym.UpSampling(data, scale=2, sample_type='nearest')"),
    _c(
        "upsample_nearest_multi",
        "mx.sym.UpSampling(data, V('b'), scale=2, sample_type='nearest', num_args=2)",
        {"data": (1, 2, 4, 4), "b": (1, 3, 2, 2)},
    ),
    _c(
        "upsample_nearest_sum",
        "mx.sym.UpSampling(data, V('b'), scale=2, sample_type='nearest', num_args=2, multi_input_mode='sum')",
        {"data": (1, 2, 4, 4), "b": (1, 2, 2, 2)},
    ),
    _c(
        "upsample_bilinear",
        "mx.sym.UpSampling(data, V('up_weight'), scale=2, sample_type='bilinear', num_filter=4, num_args=2)",
    ),
    _c(
        "embedding",
        "mx.sym.Embedding(data, input_dim=10, output_dim=5)",
        {"data": (3, 4)},
        ranges={"data": (-2, 12, True)},
    ),
    _c("dropout_eval", "mx.sym.Dropout(data, p=0.5)"),
    # softmax family
    _c("softmax", "mx.sym.softmax(data)"),
    _c("softmax_axis_temp", "mx.sym.softmax(data, axis=1, temperature=2.0)"),
    _c("log_softmax", "mx.sym.log_softmax(data, axis=2)"),
    _c("softmax_activation_instance", "mx.sym.SoftmaxActivation(data)"),
    _c("softmax_activation_channel", "mx.sym.SoftmaxActivation(data, mode='channel')"),
    _c("softmax_output", "mx.sym.SoftmaxOutput(data, name='softmax')", VEC),
    _c("softmax_output_4d", "mx.sym.SoftmaxOutput(data, name='softmax')"),
    _c("softmax_output_multi", "mx.sym.SoftmaxOutput(data, multi_output=True, name='softmax')"),
    _c(
        "softmax_output_preserve", "mx.sym.SoftmaxOutput(data, preserve_shape=True, name='softmax')"
    ),
    # arithmetic
    _c(
        "elemwise",
        "out = mx.sym.elemwise_sub(mx.sym.elemwise_mul(data, V('b')), mx.sym.elemwise_div(data, V('c')))",
        {"data": (2, 3), "b": (2, 3), "c": (2, 3)},
        ranges={"c": (0.5, 2.0, False)},
    ),
    _c("add_n", "mx.sym.add_n(data, V('b'), V('c'))", {"data": (2, 3), "b": (2, 3), "c": (2, 3)}),
    *[
        _c(
            f"broadcast_{op}",
            f"mx.sym.broadcast_{op}(data, V('b'))",
            {"data": (2, 3, 4), "b": (1, 3, 1)},
            ranges={"b": (0.5, 2.0, False)},
        )
        for op in (
            "add",
            "sub",
            "mul",
            "div",
            "maximum",
            "minimum",
            "equal",
            "greater",
            "lesser_equal",
        )
    ],
    _c(
        "broadcast_power",
        "mx.sym.broadcast_power(data, V('b'))",
        {"data": (2, 3), "b": (1, 3)},
        ranges={"data": (0.1, 2.0, False)},
    ),
    *[
        _c(f"scalar_{op}", f"mx.sym._internal.{op}(data, scalar=1.5)", VEC, ranges=POS)
        for op in (
            "_plus_scalar",
            "_minus_scalar",
            "_rminus_scalar",
            "_mul_scalar",
            "_div_scalar",
            "_rdiv_scalar",
            "_power_scalar",
            "_rpower_scalar",
            "_maximum_scalar",
            "_minimum_scalar",
            "_greater_scalar",
            "_equal_scalar",
        )
    ],
    _c(
        "operators_sugar",
        "out = (data + 1) * 2 - data / 3 + 1 / (data * data + 1) - 2 ** data",
        VEC,
    ),
    *[
        _c(f"unary_{op}", f"mx.sym.{op}(data)", VEC, ranges=POS)
        for op in (
            "exp",
            "log",
            "sqrt",
            "rsqrt",
            "square",
            "abs",
            "negative",
            "reciprocal",
            "sigmoid",
            "tanh",
            "relu",
            "floor",
            "sign",
        )
    ],
    # reductions
    _c("sum_axis", "mx.sym.sum(data, axis=(1, 2))"),
    _c("sum_all", "mx.sym.sum(data)"),
    _c("mean_keepdims", "mx.sym.mean(data, axis=1, keepdims=True)"),
    _c("max_exclude", "mx.sym.max(data, axis=1, exclude=True)"),
    _c("min_neg_axis", "mx.sym.min(data, axis=-1)"),
    _c("prod", "mx.sym.prod(data, axis=(0, 2))"),
    _c("norm", "mx.sym.norm(data, axis=1)"),
    _c("argmax", "mx.sym.argmax(data, axis=1)"),
    # tensor ops
    _c("concat", "mx.sym.Concat(data, V('b'), dim=1)", {"data": (2, 3, 4), "b": (2, 5, 4)}),
    _c("concat_axis2", "mx.sym.concat(data, V('b'), dim=2)", {"data": (2, 3, 4), "b": (2, 3, 1)}),
    _c("stack", "mx.sym.stack(data, V('b'), axis=1)", {"data": (2, 3), "b": (2, 3)}),
    _c("slice_channel", "out = mx.sym.Group(list(mx.sym.SliceChannel(data, num_outputs=2)))"),
    _c("split_squeeze", "out = mx.sym.split(data, num_outputs=7, axis=2, squeeze_axis=True)[3]"),
    _c(
        "split_used_twice",
        "s = mx.sym.split(data, num_outputs=2, axis=1)\nout = s[0] * s[1] + s[0]",
    ),
    _c("slice", "mx.sym.slice(data, begin=(0, 1, None), end=(None, 3, -1))"),
    _c(
        "slice_step",
        "mx.sym.slice(data, begin=(None, None, 1), end=(None, None, 6), step=(1, 2, 2))",
    ),
    _c("slice_neg_step", "mx.sym.slice(data, begin=(None, 3), end=(None, 0), step=(1, -1))"),
    _c("slice_axis", "mx.sym.slice_axis(data, axis=2, begin=1, end=-1)"),
    _c("slice_axis_none", "mx.sym.slice_axis(data, axis=-1, begin=2, end=None)"),
    _c("slice_like", "mx.sym.slice_like(data, V('b'))", {"data": (2, 4, 7, 7), "b": (1, 3, 5, 6)}),
    _c(
        "slice_like_axes",
        "mx.sym.slice_like(data, V('b'), axes=(2, -1))",
        {"data": (2, 4, 7, 7), "b": (1, 3, 5, 6)},
    ),
    *[
        _c(f"reshape_{i}", f"mx.sym.Reshape(data, shape={s})")
        for i, s in enumerate(
            [
                "(0, -1)",
                "(-1, 7)",
                "(0, 0, -3)",
                "(-2,)",
                "(-3, -2)",
                "(0, -4, 2, -1, 0, 0)",
                "(2, -1, 0)",
                "(-4, 1, 2, 4, 49)",
            ]
        )
    ],
    _c("reshape_reverse", "mx.sym.Reshape(data, shape=(-1, 0), reverse=True)"),
    _c("transpose", "mx.sym.transpose(data, axes=(0, 2, 3, 1))"),
    _c("transpose_default", "mx.sym.transpose(data)"),
    _c("swapaxes", "mx.sym.SwapAxis(data, dim1=1, dim2=3)"),
    _c("expand_dims", "mx.sym.expand_dims(data, axis=-1)"),
    _c("squeeze", "mx.sym.squeeze(data)", {"data": (2, 1, 3, 1)}),
    _c("squeeze_axis", "mx.sym.squeeze(data, axis=1)", {"data": (2, 1, 3, 1)}),
    _c("flatten", "mx.sym.Flatten(data)"),
    _c("crop_hw", "mx.sym.Crop(data, h_w=(4, 5), offset=(1, 2))"),
    _c("crop_center", "mx.sym.Crop(data, h_w=(4, 3), center_crop=True)"),
    _c(
        "crop_like",
        "mx.sym.Crop(data, V('b'), num_args=2)",
        {"data": (2, 4, 7, 7), "b": (1, 1, 3, 4)},
    ),
    _c(
        "pad_constant",
        "mx.sym.Pad(data, mode='constant', pad_width=(0, 0, 0, 0, 1, 2, 3, 0), constant_value=0.5)",
    ),
    _c("pad_edge", "mx.sym.Pad(data, mode='edge', pad_width=(0, 0, 0, 0, 2, 1, 1, 2))"),
    _c("pad_reflect", "mx.sym.Pad(data, mode='reflect', pad_width=(0, 0, 0, 0, 1, 1, 2, 2))"),
    _c("cast_roundtrip", "mx.sym.Cast(mx.sym.Cast(data * 10, dtype='int32'), dtype='float32')"),
    _c("tile_repeat", "mx.sym.repeat(mx.sym.tile(data, reps=(1, 2)), repeats=2, axis=0)", VEC),
    _c("broadcast_to", "mx.sym.broadcast_to(data, shape=(0, 4, 0))", {"data": (2, 1, 3)}),
    _c("broadcast_axis", "mx.sym.broadcast_axis(data, axis=1, size=5)", {"data": (2, 1, 3)}),
    _c("dot", "mx.sym.dot(data, V('b'), transpose_b=True)", {"data": (3, 4), "b": (5, 4)}),
    _c("batch_dot", "mx.sym.batch_dot(data, V('b'))", {"data": (2, 3, 4), "b": (2, 4, 5)}),
    _c(
        "where",
        "mx.sym.where(V('c'), data, V('b'))",
        {"data": (2, 3), "b": (2, 3), "c": (2, 3)},
        ranges={"c": (0, 2, True)},
    ),
    _c("identity_ops", "mx.sym.BlockGrad(mx.sym.identity(mx.sym._internal._copy(data)))"),
    _c("zeros_ones_like", "mx.sym.zeros_like(data) + mx.sym.ones_like(data) * data"),
    # the rest of the registry
    _c("softmin", "mx.sym.softmin(data, axis=1)"),
    _c(
        "regression_outputs",
        "out = mx.sym.Group([mx.sym.LinearRegressionOutput(data, name='lin'), mx.sym.LogisticRegressionOutput(data, name='log'), mx.sym.MAERegressionOutput(data, name='mae')])",
        VEC,
    ),
    _c("reshape_like", "mx.sym.reshape_like(data, V('b'))", {"data": (2, 6), "b": (3, 4)}),
    _c(
        "broadcast_like", "mx.sym.broadcast_like(data, V('b'))", {"data": (1, 3, 1), "b": (2, 3, 4)}
    ),
    _c(
        "broadcast_like_axes",
        "mx.sym.broadcast_like(data, V('b'), lhs_axes=(0,), rhs_axes=(2,))",
        {"data": (1, 3), "b": (2, 3, 4)},
    ),
    _c(
        "broadcast_mod",
        "mx.sym.broadcast_mod(data * 5, V('b'))",
        {"data": (2, 3), "b": (1, 3)},
        ranges={"b": (0.5, 2.0, False)},
    ),
    _c("broadcast_hypot", "mx.sym.broadcast_hypot(data, V('b'))", {"data": (2, 3), "b": (1, 3)}),
    _c(
        "broadcast_logical",
        "mx.sym.broadcast_logical_and(data > 0, V('b') > 0) + mx.sym.broadcast_logical_or(data > 0.5, V('b') > 0.5) + mx.sym.broadcast_logical_xor(data > 0, V('b') > 0)",
        {"data": (2, 3), "b": (1, 3)},
    ),
    _c(
        "broadcast_not_equal",
        "mx.sym.broadcast_not_equal(mx.sym.round(data * 2), mx.sym.round(V('b') * 2)) + mx.sym.broadcast_greater_equal(data, V('b'))",
        {"data": (2, 3), "b": (1, 3)},
    ),
    _c(
        "scalar_mod",
        "mx.sym._internal._mod_scalar(data * 5, scalar=1.5) + mx.sym._internal._rmod_scalar(data + 2, scalar=1.5)",
        VEC,
    ),
    _c(
        "scalar_more",
        "mx.sym._internal._hypot_scalar(data, scalar=2) + mx.sym._internal._not_equal_scalar(mx.sym.round(data * 3), scalar=1) + mx.sym._internal._lesser_scalar(data, scalar=0.2) + mx.sym._internal._greater_equal_scalar(data, scalar=0.1) + mx.sym._internal._lesser_equal_scalar(data, scalar=0) + mx.sym._internal._logical_and_scalar(data > 0, scalar=1) + mx.sym._internal._logical_or_scalar(data > 0, scalar=0) + mx.sym._internal._logical_xor_scalar(data > 0, scalar=1)",
        VEC,
    ),
    *[
        _c(f"unary_{op}", f"mx.sym.{op}(data)", VEC, ranges=POS)
        for op in (
            "log2",
            "log10",
            "log1p",
            "expm1",
            "ceil",
            "trunc",
            "sin",
            "cos",
            "erf",
            "logical_not",
        )
    ],
    _c(
        "unary_round_halves",
        "mx.sym.round(data * 0.0 + V('h'))",
        {"data": (1, 6), "h": (1, 6)},
        ranges={"h": (-3, 3, True)},
    ),
    _c("round", "mx.sym.round(data * 4)", VEC),
    _c("argmin_keepdims", "mx.sym.argmin(data, axis=2, keepdims=True)"),
    _c(
        "max_axis_alias",
        "mx.sym.max_axis(data, axis=1) + mx.sym.min_axis(data, axis=1) + mx.sym.sum_axis(data, axis=1)",
    ),
    _c("batchnorm_v1", "mx.sym.BatchNorm_v1(data, fix_gamma=False)"),
    _c("sync_batchnorm", "mx.sym.contrib.SyncBatchNorm(data, fix_gamma=False, key='bn0')"),
    _c("amp_cast", "mx.sym.amp_cast(data, dtype='float16')"),
    _c("elementwise_sum", "mx.sym.ElementWiseSum(data, V('b'))", {"data": (2, 3), "b": (2, 3)}),
    _c("stop_gradient_make_loss", "mx.sym.make_loss(mx.sym.stop_gradient(data) * 2)"),
    # an InsightFace-style face embedding net
    _c(
        "insightface_like",
        "\n".join(
            [
                "x = mx.sym.Convolution(data, kernel=(3, 3), pad=(1, 1), num_filter=8, no_bias=True, name='conv0')",
                "x = mx.sym.BatchNorm(x, fix_gamma=False, eps=2e-5, momentum=0.9, name='bn0')",
                "x = mx.sym.LeakyReLU(x, act_type='prelu', name='relu0')",
                "y = mx.sym.BatchNorm(x, fix_gamma=False, eps=2e-5, name='stage1_bn1')",
                "y = mx.sym.Convolution(y, kernel=(3, 3), stride=(2, 2), pad=(1, 1), num_filter=8, no_bias=True, name='stage1_conv1')",
                "y = mx.sym.LeakyReLU(y, act_type='prelu', name='stage1_relu1')",
                "s = mx.sym.Convolution(x, kernel=(1, 1), stride=(2, 2), num_filter=8, no_bias=True, name='stage1_sc')",
                "x = y + mx.sym.BatchNorm(s, fix_gamma=False, eps=2e-5, name='stage1_sc_bn')",
                "x = mx.sym.BatchNorm(x, fix_gamma=False, eps=2e-5, name='bn1')",
                "x = mx.sym.Dropout(x, p=0.0)",  # p=0 keeps training mode comparable
                "x = mx.sym.FullyConnected(x, num_hidden=16, name='pre_fc1')",
                "x = mx.sym.BatchNorm(x, fix_gamma=True, eps=2e-5, name='fc1')",
                "x = x * 1.0 - 0.0",
                "out = mx.sym.L2Normalization(x, mode='instance', name='embedding')",
            ]
        ),
        {"data": (2, 3, 16, 16)},
        train=True,
    ),
]


# MXNet leaves rrelu's mask output uninitialised in inference mode.
UNDEFINED_OUTPUTS = {("rrelu_eval", 1)}


@pytest.fixture(scope="module")
def generated():  # type: ignore[no-untyped-def]
    return generate(CASES)


# Attributes MXNet 1.9.1's oneDNN kernels refuse ("could not create a descriptor
# for a dilated deconvolution"): compared with MXNet's own CPU kernels instead.
REFERENCE_KERNEL_CASES: list[Case] = [
    _c(
        "deconv_target_shape_odd",
        "mx.sym.Deconvolution(data, kernel=(3, 3), stride=(2, 2), num_filter=3, target_shape=(14, 14))",
    ),
    _c(
        "deconv_target_shape_even",
        "mx.sym.Deconvolution(data, kernel=(3, 3), stride=(2, 2), num_filter=3, target_shape=(13, 12))",
    ),
    _c(
        "deconv_target_shape_exact",
        "mx.sym.Deconvolution(data, kernel=(4, 4), stride=(2, 2), num_filter=2, target_shape=(16, 16), no_bias=False)",
    ),
]


@pytest.fixture(scope="module")
def generated_reference():  # type: ignore[no-untyped-def]
    return generate(REFERENCE_KERNEL_CASES, onednn=False)


@pytest.mark.parametrize(
    "case", REFERENCE_KERNEL_CASES, ids=[c.name for c in REFERENCE_KERNEL_CASES]
)
def test_op_matches_mxnet_reference_kernels(generated_reference, case):  # type: ignore[no-untyped-def]
    outdir, info = generated_reference
    meta = info[case.name]
    assert "error" not in meta, meta.get("error")
    module, arrays = _load(outdir, case.name)
    with torch.no_grad():
        out = module(*_inputs(arrays, meta["inputs"]))
    assert out.shape == arrays["out0"].shape
    _close(out, arrays["out0"])


def _load(outdir, name):  # type: ignore[no-untyped-def]
    arrays = np.load(outdir / f"{name}.npz")
    module = mxt.import_model(str(outdir / name))
    return module, arrays


def _inputs(arrays, names):  # type: ignore[no-untyped-def]
    return [torch.from_numpy(arrays[f"in_{n}"]) for n in names]


def _close(got, want, rtol=1e-5):  # type: ignore[no-untyped-def]
    got = got.detach().numpy() if hasattr(got, "detach") else got
    assert got.shape == want.shape
    scale = max(1.0, float(np.abs(want).max()))
    np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * scale)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_op_matches_mxnet(generated, case):  # type: ignore[no-untyped-def]
    outdir, info = generated
    meta = info[case.name]
    assert "error" not in meta, meta.get("error")
    module, arrays = _load(outdir, case.name)
    assert module.mxnet_info["inputs"] == meta["inputs"]
    with torch.no_grad():
        out = module(*_inputs(arrays, meta["inputs"]))
    outs = out if isinstance(out, tuple) else (out,)
    assert len(outs) == meta["outputs"]
    for i, o in enumerate(outs):
        if (case.name, i) not in UNDEFINED_OUTPUTS:
            _close(o, arrays[f"out{i}"])


TRAIN_CASES = [c for c in CASES if c.train]


@pytest.mark.parametrize("case", TRAIN_CASES, ids=[c.name for c in TRAIN_CASES])
def test_train_mode_matches_mxnet(generated, case):  # type: ignore[no-untyped-def]
    """Training mode: batch statistics, and running statistics updated as MXNet does."""
    outdir, info = generated
    module, arrays = _load(outdir, case.name)
    module.train()
    with torch.no_grad():
        out = module(*_inputs(arrays, info[case.name]["inputs"]))
    _close(out, arrays["train_out0"], rtol=1e-4)
    state = module.state_dict()
    for key in arrays.files:
        if key.startswith("train_aux_"):
            _close(state[key[len("train_aux_") :]], arrays[key], rtol=1e-5)


def test_dropout_train_mode():  # type: ignore[no-untyped-def]
    from mxparams.ops_torch import Dropout

    x = torch.ones(4, 3, 50, 50)
    d = Dropout(0.3, "training", ())
    d.eval()
    assert torch.equal(d(x), x)
    d.train()
    y = d(x)
    kept = y[y != 0]
    assert torch.allclose(kept, torch.full_like(kept, 1 / 0.7))
    assert abs(float((y == 0).float().mean()) - 0.3) < 0.02
    shared = Dropout(0.5, "always", (2, 3))(x)  # one mask value per (batch, channel)
    assert torch.equal(shared.amax(dim=(2, 3)), shared.amin(dim=(2, 3)))


def test_rrelu_train_slopes_in_bounds():  # type: ignore[no-untyped-def]
    from mxparams.ops_torch import LeakyReLU

    act = LeakyReLU("rrelu", 0.25, 0.1, 0.3)
    act.train()
    x = -torch.ones(1000)
    slopes = -act(x)[0]
    assert float(slopes.min()) >= 0.1 and float(slopes.max()) <= 0.3
    assert float(slopes.std()) > 0.01
    act.eval()
    assert torch.allclose(act(x)[0], torch.full_like(x, -0.2))


def test_gradients_flow_to_parameters(generated):  # type: ignore[no-untyped-def]
    outdir, info = generated
    module, arrays = _load(outdir, "insightface_like")
    module.train()
    out = module(*_inputs(arrays, info["insightface_like"]["inputs"]))
    out.sum().backward()
    grads = {n: p.grad for n, p in module.named_parameters()}
    assert grads["conv0_weight"] is not None and float(grads["conv0_weight"].abs().sum()) > 0
    assert all(not b.requires_grad for b in module.buffers())
