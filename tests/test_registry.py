"""The layer registry: exact numbers for known layers, and property tests against torch.

The property tests draw random 1-d/2-d/3-d layer configurations (valid and invalid) and
require that ``LayerType.infer`` agrees with real PyTorch on everything it claims:

- the output shape equals torch's, and where torch refuses the configuration (at
  construction or in the forward pass) we raise ``LayerConfigError`` too, and vice versa;
- ``params`` == ``sum(p.numel())``, ``trainable`` the same over ``requires_grad``,
  ``buffers`` == ``sum(b.numel())`` (BatchNorm's ``num_batches_tracked`` included);
- ``macs`` == ``FlopCounterMode`` total / 2 (the documented MAC definition);
- ``tensors`` are exactly the module's ``named_parameters()`` with their shapes;
- ``torch.nn.<torch_name>(**torch_kwargs)`` builds and gives the same shape.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shapecalc.errors import LayerConfigError
from shapecalc.registry import LAYERS, STRUCTURAL, LayerType, all_names, did_you_mean, lookup, normalise_name

# --------------------------------------------------------------------------- exact numbers


def conv2d() -> LayerType:
    lt = lookup("conv2d")
    assert lt is not None
    return lt


def test_lecture_conv2d_3_to_64() -> None:
    res = conv2d().infer((3, 32, 32), {"out_channels": 64, "kernel_size": 3, "padding": 1})
    assert res.output == (64, 32, 32)
    assert res.params == 1792  # 64*3*3*3 weights + 64 biases
    assert res.trainable == 1792
    assert res.buffers == 0
    assert res.tensors == (("weight", (64, 3, 3, 3)), ("bias", (64,)))
    assert res.macs == 32 * 32 * 64 * 3 * 3 * 3  # 1,769,472 per sample
    assert res.summary == "3x3 p1"
    assert res.unseen == (0, 0)
    assert res.torch_kwargs["in_channels"] == 3


def test_lecture_why_convolutions_87111x() -> None:
    # the lecture: a dense layer 224x224x3 -> 1000 vs a 3x3 conv 3 -> 64, no bias
    conv = conv2d().infer((3, 224, 224), {"out_channels": 64, "kernel_size": 3, "bias": False})
    linear = lookup("linear")
    assert linear is not None
    dense = linear.infer((3 * 224 * 224,), {"out_features": 1000, "bias": False})
    assert conv.params == 1728
    assert dense.params == 150_528_000
    assert dense.params // conv.params == 87_111
    assert round(dense.params / conv.params) == 87_111


def test_names_lookup_case_and_underscores() -> None:
    assert lookup("ConvTranspose2d") is lookup("conv_transpose2d") is lookup("CONV_TRANSPOSE_2D")
    assert lookup("adaptive_avg_pool2d") is lookup("AdaptiveAvgPool2d")
    assert lookup("nosuchlayer") is None
    assert normalise_name("Max_Pool2d") == "maxpool2d"
    assert "conv2d" in all_names() and "zeropad2d" in all_names()
    assert not set(STRUCTURAL) & {normalise_name(n) for n in all_names()}


def test_did_you_mean() -> None:
    assert did_you_mean("conv2", all_names()) == " (did you mean 'conv2d'?)"
    assert did_you_mean("xyzzy", all_names()) == ""


def test_check_arg_unknown_and_wrong_type() -> None:
    lt = conv2d()
    with pytest.raises(LayerConfigError) as e:
        lt.check_arg("kernal_size", 3)
    assert e.value.arg == "kernal_size"
    assert str(e.value).startswith("conv2d has no argument 'kernal_size' (did you mean 'kernel_size'?); it takes ")
    with pytest.raises(LayerConfigError) as e:
        lt.check_arg("kernel_size", True)
    assert str(e.value) == "conv2d kernel_size must be a positive int or a list of 2, not true"
    with pytest.raises(LayerConfigError) as e:
        lt.check_arg("kernel_size", [3, 3, 3])
    assert str(e.value) == (
        "conv2d kernel_size has 3 values but conv2d has 2 spatial axes: give one int or a list of 2"
    )
    assert lt.check_arg("kernel_size", [3, 5]) == (3, 5)
    assert lt.check_arg("padding", "same") == "same"
    with pytest.raises(LayerConfigError, match="conv2d padding must be 'same', 'valid', an int >= 0"):
        lt.check_arg("padding", "full")


def test_missing_required_and_channel_mismatch() -> None:
    with pytest.raises(LayerConfigError) as e:
        conv2d().infer((3, 8, 8), {"kernel_size": 3})
    assert str(e.value) == "conv2d needs 'out_channels'"
    with pytest.raises(LayerConfigError) as e:
        conv2d().infer((3, 8, 8), {"in_channels": 4, "out_channels": 8, "kernel_size": 3})
    assert str(e.value) == "in_channels is 4 but the input has 3 channels"
    assert e.value.arg == "in_channels"


def test_kernel_too_large_message() -> None:
    with pytest.raises(LayerConfigError) as e:
        conv2d().infer((3, 5, 5), {"out_channels": 8, "kernel_size": 5, "dilation": 2, "padding": 1})
    assert str(e.value) == (
        "kernel 5 (dilated 9) is larger than padded input 7 (input 5 + padding 2);"
        " the input must be at least 7 (axis 0)"
    )


def test_same_padding_refused_with_stride() -> None:
    with pytest.raises(LayerConfigError) as e:
        conv2d().infer((3, 8, 8), {"out_channels": 8, "kernel_size": 3, "stride": 2, "padding": "same"})
    assert str(e.value) == (
        "padding 'same' is not supported for strided convolutions (stride 2); use stride 1 or an explicit padding"
    )


def test_same_padding_even_kernel_is_asymmetric() -> None:
    res = conv2d().infer((1, 10, 10), {"out_channels": 1, "kernel_size": [4, 3], "padding": "same"})
    assert res.output == (1, 10, 10)
    assert res.summary == "4x3 same"


def test_unseen_rows_reported() -> None:
    # 6 + 2*1 - 3 = 5, 5 % 2 = 1: the last padding row is skipped, nothing real is lost
    res = conv2d().infer((1, 6, 7), {"out_channels": 1, "kernel_size": 3, "stride": 2, "padding": 1})
    assert res.output == (1, 3, 4)
    assert res.unseen == (0, 0)
    # 8 - 3 = 5, 5 % 2 = 1: the last input row is never seen
    res = conv2d().infer((1, 8, 8), {"out_channels": 1, "kernel_size": 3, "stride": 2})
    assert res.unseen == (1, 1)


def test_batchnorm_buffers_and_groupnorm_divisors() -> None:
    bn = lookup("batchnorm2d")
    assert bn is not None
    res = bn.infer((64, 8, 8), {})
    assert (res.params, res.buffers) == (128, 129)  # running mean, var, num_batches_tracked
    gn = lookup("groupnorm")
    assert gn is not None
    with pytest.raises(LayerConfigError) as e:
        gn.infer((12, 4, 4), {"num_groups": 5})
    assert str(e.value) == "num_groups 5 must divide the 12 channels (divisors: 1, 2, 3, 4, 6, 12)"


def test_linear_mismatch_suggests_flatten() -> None:
    lt = lookup("linear")
    assert lt is not None
    with pytest.raises(LayerConfigError) as e:
        lt.infer((16, 5, 5), {"in_features": 400, "out_features": 10})
    assert str(e.value) == "in_features is 400 but the input has 5 features (flatten first: it would give 400 features)"


def test_pool_padding_limit_message() -> None:
    lt = lookup("maxpool2d")
    assert lt is not None
    with pytest.raises(LayerConfigError) as e:
        lt.infer((1, 8, 8), {"kernel_size": 2, "padding": 2})
    assert str(e.value) == "padding 2 should be at most half of the kernel size 2 (at most 1) (axis 0)"


def test_flatten_refuses_batch_axis() -> None:
    # a deliberate difference from torch (which would allow it): see the property test below
    lt = lookup("flatten")
    assert lt is not None
    with pytest.raises(LayerConfigError, match="start_dim 0 would flatten the batch axis"):
        lt.infer((3, 4), {"start_dim": 0})
    assert lt.infer((3, 4, 5), {}).output == (60,)
    assert lt.infer((3, 4, 5), {"start_dim": 2}).output == (3, 20)


# regressions found by the property tests below (each was a disagreement with torch)


def _lt(name: str) -> LayerType:
    lt = lookup(name)
    assert lt is not None
    return lt


def test_replicate_padding_takes_any_amount() -> None:
    # replicate repeats the edge value: torch pads 1 sample by 5; reflect and circular have limits
    args = {"out_channels": 1, "kernel_size": 1, "padding": 5}
    assert _lt("conv1d").infer((1, 1), {**args, "padding_mode": "replicate"}).output == (1, 11)
    with pytest.raises(LayerConfigError) as e:
        _lt("conv1d").infer((1, 2), {**args, "padding_mode": "reflect"})
    assert str(e.value) == "padding 5 with padding_mode 'reflect' must be at most 1 for axis 0 of size 2"
    with pytest.raises(LayerConfigError) as e:
        _lt("conv1d").infer((1, 2), {**args, "padding_mode": "circular"})
    assert str(e.value) == "padding 5 with padding_mode 'circular' must be at most 2 for axis 0 of size 2"


def test_maxpool_ceil_mode_window_may_overhang() -> None:
    assert _lt("maxpool1d").infer((1, 1), {"kernel_size": 2, "ceil_mode": True}).output == (1, 1)


def test_avgpool3d_needs_unpadded_input_at_least_kernel() -> None:
    # torch's avg_pool3d (not 1d/2d, not max) checks the unpadded input against the kernel
    with pytest.raises(LayerConfigError) as e:
        _lt("avgpool3d").infer((1, 5, 1, 5), {"kernel_size": [1, 2, 1], "padding": [0, 1, 0]})
    assert str(e.value) == (
        "kernel 2 is larger than input 1 (axis 1): avgpool3d needs the unpadded input to be at least the kernel size"
    )
    assert _lt("avgpool2d").infer((1, 1, 5), {"kernel_size": [2, 1], "padding": [1, 0]}).output == (1, 1, 5)


def test_zeropad_crops_before_padding() -> None:
    # torch crops first: cropping 2 rows of 1 fails even though 2 rows of padding come back
    with pytest.raises(LayerConfigError) as e:
        _lt("zeropad2d").infer((1, 1, 1), {"padding": [0, 0, 2, -2]})
    assert str(e.value) == (
        "padding [0, 0, 2, -2] crops 2 from axis 0 of size 1: negative padding can crop at most 1 there"
    )
    assert _lt("zeropad2d").infer((1, 1, 1), {"padding": [0, 0, 2, -1]}).output == (1, 2, 1)


def test_adaptive_pool_1d_refuses_null() -> None:
    # torch's 1-d adaptive pools raise a TypeError for None; we refused nothing and handed out bad kwargs
    with pytest.raises(LayerConfigError) as e:
        _lt("adaptive_avgpool1d").infer((1, 4), {"output_size": [None]})
    assert str(e.value) == "adaptive_avgpool1d output_size must be a positive int or a list of 1, not [null]"
    assert _lt("adaptive_avgpool2d").infer((1, 4, 6), {"output_size": [None, 2]}).output == (1, 4, 2)


def test_batchnorm_wrong_num_features_refused() -> None:
    # torch never looks at num_features without affine and running stats; a wrong one is still a spec bug
    with pytest.raises(LayerConfigError) as e:
        _lt("batchnorm1d").infer((1, 2), {"num_features": 2, "affine": False, "track_running_stats": False})
    assert str(e.value) == "num_features is 2 but the input has 1 channels"


# --------------------------------------------------------------------------- property tests vs torch

# every test of this part is marked torch: without torch each skips on its own
try:
    import torch
    from torch.utils.flop_counter import FlopCounterMode
except ImportError:
    pass

from shapecalc.torch_build import layer_class  # noqa: E402

SETTINGS = settings(
    # raise it locally for a deeper search: SHAPECALC_EXAMPLES=2000 pytest tests/test_registry.py
    max_examples=int(os.environ.get("SHAPECALC_EXAMPLES", "100")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


def _Fn(fn: Any, *params: Any) -> Any:
    """A module made of a plain torch expression: the independent oracle of our own modules."""

    class Expression(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.params = torch.nn.ParameterList(params)

        def forward(self, x: Any) -> Any:
            return fn(x, *self.params)

    return Expression()


def _layernorm2d_oracle(shape: tuple[int, ...], kw: Mapping[str, Any]) -> Any:
    # torchvision's LayerNorm2d is nn.LayerNorm applied with the channels moved last (4-d input only)
    norm = torch.nn.LayerNorm(kw["normalized_shape"], kw.get("eps", 1e-5), kw.get("elementwise_affine", True),
                              kw.get("bias", True))  # fmt: skip
    module = torch.nn.Sequential()
    module.add_module("norm", norm)
    module.forward = lambda x: norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)  # type: ignore[method-assign]
    return module


def _layer_scale_oracle(shape: tuple[int, ...], kw: Mapping[str, Any]) -> Any:
    param = torch.nn.Parameter(torch.full((shape[0], *([1] * (len(shape) - 1))), float(kw.get("init", 1e-6))))
    return _Fn(lambda x, p: x * p, param)


def _stochastic_depth_oracle(shape: tuple[int, ...], kw: Mapping[str, Any]) -> Any:
    if not 0 <= kw["p"] <= 1 or kw.get("mode", "row") not in ("row", "batch"):
        raise ValueError("torchvision refuses it")
    return torch.nn.Identity()  # in eval: the identity


#: our own modules (torch.nn has none) are checked against torch expressions written independently
ORACLES: dict[str, Any] = {
    "permute": lambda shape, kw: _Fn(lambda x: torch.permute(x, kw["dims"])),
    "mean": lambda shape, kw: _Fn(lambda x: x.mean(kw["dim"], keepdim=kw.get("keepdim", False))),
    "layernorm2d": _layernorm2d_oracle,
    "layer_scale": _layer_scale_oracle,
    "stochastic_depth": _stochastic_depth_oracle,
}

BATCH = 2
MAX_SPATIAL = {1: 24, 2: 16, 3: 8}

#: the argument torch needs that we infer from the incoming shape
INFERRED = {"in_channels", "in_features", "num_features", "num_channels"}


def _tupled(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def _torch_kwargs(lt: LayerType, shape: tuple[int, ...], args: Mapping[str, Any]) -> dict[str, Any]:
    """What a user would pass to torch for these spec args: inferred channels filled in."""
    kwargs = {k: _tupled(v) for k, v in args.items()}
    for a in lt.args:
        if a.inferred and a.name not in kwargs:
            kwargs[a.name] = shape[-1] if a.name == "in_features" else shape[0]
    return kwargs


def _run_torch(lt: LayerType, kwargs: Mapping[str, Any], shape: tuple[int, ...]) -> tuple[Any, Any, int]:
    """(module, output, flops) or raise what torch raises."""
    oracle = ORACLES.get(lt.name)
    if oracle is not None:
        module = oracle(shape, kwargs).eval()
    else:
        module = layer_class(lt)(**kwargs).eval()  # eval: batch statistics need >1 value
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        out = module(torch.zeros(BATCH, *shape))
    return module, out, counter.get_total_flops()


def _run_own(lt: LayerType, kwargs: Mapping[str, Any], shape: tuple[int, ...]) -> tuple[Any, Any, int]:
    """Our module for a layer type, built from the registry's constructor arguments."""
    module = layer_class(lt)(**kwargs).eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        out = module(torch.zeros(BATCH, *shape))
    return module, out, counter.get_total_flops()


def assert_matches_torch(name: str, shape: tuple[int, ...], args: Mapping[str, Any]) -> None:
    """Our verdict on (shape, args) equals torch's: same shape and counts, or both refuse."""
    lt = lookup(name)
    assert lt is not None
    ours: Any = None
    ours_error: LayerConfigError | None = None
    try:
        ours = lt.infer(shape, args)
    except LayerConfigError as exc:
        ours_error = exc
    torch_error: Exception | None = None
    try:
        module, out, flops = _run_torch(lt, _torch_kwargs(lt, shape, args), shape)
    # torch's ways of refusing a configuration (Hardtanh asserts, non-constant padding of too many
    # axes is "not implemented")
    except (RuntimeError, ValueError, IndexError, TypeError, AssertionError, NotImplementedError) as exc:
        torch_error = exc
    else:
        if out.numel() == 0:
            # torch returns an empty tensor for some zero-length outputs (a transposed conv whose
            # padding eats the whole output); a network with a zero-length axis is broken, so
            # shapecalc refuses it deliberately and counts this as torch refusing too
            torch_error = RuntimeError(f"empty output {tuple(out.shape)}")
    if ours_error is not None or torch_error is not None:
        assert ours_error is not None and torch_error is not None, (
            f"{name} {shape} {dict(args)}: ours -> {ours_error!s}, torch -> {torch_error!s}"
        )
        return
    assert tuple(out.shape) == (BATCH, *ours.output), f"{name} {shape} {dict(args)}"
    assert ours.params == sum(p.numel() for p in module.parameters())
    assert ours.trainable == sum(p.numel() for p in module.parameters() if p.requires_grad)
    assert ours.buffers == sum(b.numel() for b in module.buffers())
    assert 2 * BATCH * ours.macs == flops, f"{name} {shape} {dict(args)}: macs {ours.macs}, torch flops {flops}"
    # an oracle names its parameters its own way: only their shapes must agree
    assert tuple(s for _, s in ours.tensors) == tuple(tuple(p.shape) for p in module.parameters())
    # the constructor kwargs we hand out build the same layer
    rebuilt, out2, _ = _run_own(lt, ours.torch_kwargs, shape)
    assert tuple(out2.shape) == tuple(out.shape)
    assert ours.tensors == tuple((n, tuple(p.shape)) for n, p in rebuilt.named_parameters())


def per_axis(n: int, values: st.SearchStrategy[int]) -> st.SearchStrategy[Any]:
    """An int or a list of n ints, as a spec writes it."""
    return st.one_of(values, st.lists(values, min_size=n, max_size=n))


@st.composite
def spatial_shape(draw: st.DrawFn, n: int, channels: int) -> tuple[int, ...]:
    return (channels, *draw(st.lists(st.integers(1, MAX_SPATIAL[n]), min_size=n, max_size=n)))


NDIMS = st.sampled_from([1, 2, 3])


@st.composite
def conv_case(draw: st.DrawFn) -> tuple[str, tuple[int, ...], dict[str, Any]]:
    n = draw(NDIMS)
    cin = draw(st.integers(1, 8))
    shape = draw(spatial_shape(n, cin))
    args: dict[str, Any] = {
        "out_channels": draw(st.integers(1, 8)),
        "kernel_size": draw(per_axis(n, st.integers(1, 5))),
    }
    if draw(st.booleans()):
        args["stride"] = draw(per_axis(n, st.integers(1, 3)))
    if draw(st.booleans()):
        args["dilation"] = draw(per_axis(n, st.integers(1, 3)))
    padding = draw(st.sampled_from(["none", "int", "same", "valid"]))
    if padding == "int":
        args["padding"] = draw(per_axis(n, st.integers(0, 4)))
    elif padding != "none":
        args["padding"] = padding
    if draw(st.booleans()):
        args["groups"] = draw(st.integers(1, 4))  # not always a divisor: torch must refuse those
    if draw(st.booleans()):
        args["bias"] = draw(st.booleans())
    if draw(st.booleans()):
        args["padding_mode"] = draw(st.sampled_from(["zeros", "reflect", "replicate", "circular"]))
    return f"conv{n}d", shape, args


@pytest.mark.torch
@given(conv_case())
@SETTINGS
def test_conv_matches_torch(case: tuple[str, tuple[int, ...], dict[str, Any]]) -> None:
    assert_matches_torch(*case)


@st.composite
def conv_transpose_case(draw: st.DrawFn) -> tuple[str, tuple[int, ...], dict[str, Any]]:
    n = draw(NDIMS)
    cin = draw(st.integers(1, 8))
    shape = (cin, *draw(st.lists(st.integers(1, MAX_SPATIAL[n] // 2), min_size=n, max_size=n)))
    args: dict[str, Any] = {
        "out_channels": draw(st.integers(1, 8)),
        "kernel_size": draw(per_axis(n, st.integers(1, 4))),
    }
    for key, values in (
        ("stride", st.integers(1, 3)),
        ("padding", st.integers(0, 3)),
        ("dilation", st.integers(1, 3)),
        ("output_padding", st.integers(0, 2)),
    ):
        if draw(st.booleans()):
            args[key] = draw(per_axis(n, values))
    if draw(st.booleans()):
        args["groups"] = draw(st.integers(1, 4))
    if draw(st.booleans()):
        args["bias"] = draw(st.booleans())
    return f"conv_transpose{n}d", shape, args


@pytest.mark.torch
@given(conv_transpose_case())
@SETTINGS
def test_conv_transpose_matches_torch(case: tuple[str, tuple[int, ...], dict[str, Any]]) -> None:
    assert_matches_torch(*case)


@st.composite
def pool_case(draw: st.DrawFn) -> tuple[str, tuple[int, ...], dict[str, Any]]:
    n = draw(NDIMS)
    kind = draw(st.sampled_from(["max", "avg"]))
    shape = draw(spatial_shape(n, draw(st.integers(1, 3))))
    args: dict[str, Any] = {"kernel_size": draw(per_axis(n, st.integers(1, 5)))}
    if draw(st.booleans()):
        args["stride"] = draw(st.one_of(st.none(), per_axis(n, st.integers(1, 4))))
    if draw(st.booleans()):
        args["padding"] = draw(per_axis(n, st.integers(0, 3)))
    if draw(st.booleans()):
        args["ceil_mode"] = draw(st.booleans())
    if kind == "max" and draw(st.booleans()):
        args["dilation"] = draw(per_axis(n, st.integers(1, 3)))
    if kind == "avg" and draw(st.booleans()):
        args["count_include_pad"] = draw(st.booleans())
    if kind == "avg" and n > 1 and draw(st.booleans()):
        args["divisor_override"] = draw(st.integers(1, 5))
    return f"{kind}pool{n}d", shape, args


@pytest.mark.torch
@given(pool_case())
@SETTINGS
def test_pool_matches_torch(case: tuple[str, tuple[int, ...], dict[str, Any]]) -> None:
    assert_matches_torch(*case)


@st.composite
def adaptive_case(draw: st.DrawFn) -> tuple[str, tuple[int, ...], dict[str, Any]]:
    n = draw(NDIMS)
    kind = draw(st.sampled_from(["avg", "max"]))
    shape = draw(spatial_shape(n, draw(st.integers(1, 3))))
    size = st.integers(1, MAX_SPATIAL[n])
    output_size = draw(st.one_of(size, st.lists(st.one_of(st.none(), size), min_size=n, max_size=n)))
    return f"adaptive_{kind}pool{n}d", shape, {"output_size": output_size}


@pytest.mark.torch
@given(adaptive_case())
@SETTINGS
def test_adaptive_pool_matches_torch(case: tuple[str, tuple[int, ...], dict[str, Any]]) -> None:
    assert_matches_torch(*case)


@st.composite
def upsample_case(draw: st.DrawFn) -> tuple[str, tuple[int, ...], dict[str, Any]]:
    n = draw(NDIMS)
    shape = draw(spatial_shape(n, draw(st.integers(1, 3))))
    args: dict[str, Any] = {}
    if draw(st.booleans()):
        args["size"] = draw(per_axis(n, st.integers(1, MAX_SPATIAL[n])))
    else:
        scale = st.one_of(st.sampled_from([0.5, 1.5, 2, 3, 2.5, 0.3]), st.floats(0.1, 3.0))
        args["scale_factor"] = draw(st.one_of(scale, st.lists(scale, min_size=n, max_size=n)))
    args["mode"] = draw(st.sampled_from(["nearest", "nearest-exact", "linear", "bilinear", "bicubic", "trilinear"]))
    if draw(st.booleans()):
        args["align_corners"] = draw(st.booleans())
    return "upsample", shape, args


@pytest.mark.torch
@given(upsample_case())
@SETTINGS
def test_upsample_matches_torch(case: tuple[str, tuple[int, ...], dict[str, Any]]) -> None:
    assert_matches_torch(*case)


@pytest.mark.torch
@given(
    shape=st.lists(st.integers(1, 8), min_size=2, max_size=3).map(tuple),
    padding=st.one_of(st.integers(-3, 3), st.lists(st.integers(-4, 3), min_size=4, max_size=4)),
)
@SETTINGS
def test_zeropad_matches_torch(shape: tuple[int, ...], padding: Any) -> None:
    assert_matches_torch("zeropad2d", shape, {"padding": padding})


@pytest.mark.torch
@given(
    shape=st.lists(st.integers(1, 5), min_size=1, max_size=4).map(tuple),
    start=st.integers(-6, 5),
    end=st.integers(-6, 5),
)
@SETTINGS
def test_flatten_matches_torch(shape: tuple[int, ...], start: int, end: int) -> None:
    rank = len(shape) + 1
    if start in (0, -rank) and -rank <= end < rank:
        # deliberate: torch would fold the batch axis into the features; we refuse it
        lt = lookup("flatten")
        assert lt is not None
        with pytest.raises(LayerConfigError):
            lt.infer(shape, {"start_dim": start, "end_dim": end})
        return
    assert_matches_torch("flatten", shape, {"start_dim": start, "end_dim": end})


@pytest.mark.torch
@given(
    shape=st.lists(st.integers(1, 6), min_size=1, max_size=3).map(tuple),
    out_features=st.integers(1, 8),
    bias=st.booleans(),
    in_features=st.one_of(st.none(), st.integers(1, 6)),
)
@SETTINGS
def test_linear_matches_torch(shape: tuple[int, ...], out_features: int, bias: bool, in_features: int | None) -> None:
    args: dict[str, Any] = {"out_features": out_features, "bias": bias}
    if in_features is not None:
        args["in_features"] = in_features
    assert_matches_torch("linear", shape, args)


@st.composite
def norm_case(draw: st.DrawFn) -> tuple[str, tuple[int, ...], dict[str, Any]]:
    kind = draw(st.sampled_from(["batchnorm", "instancenorm", "groupnorm", "layernorm"]))
    n = draw(NDIMS)
    c = draw(st.integers(1, 8))
    shape = (c, *draw(st.lists(st.integers(2, 6), min_size=n, max_size=n)))
    if kind == "batchnorm":
        if n == 1 and draw(st.booleans()):
            shape = (c,)  # BatchNorm1d also takes [C]
        args: dict[str, Any] = {"affine": draw(st.booleans()), "track_running_stats": draw(st.booleans())}
        if (args["affine"] or args["track_running_stats"]) and draw(st.booleans()):
            # without affine and running stats torch never looks at num_features; we still
            # refuse a wrong one (test_batchnorm_wrong_num_features_refused)
            args["num_features"] = draw(st.integers(1, 8))
        return f"batchnorm{n}d", shape, args
    if kind == "instancenorm":
        # num_features omitted: torch only warns on a mismatch when affine is false, we refuse it
        return f"instancenorm{n}d", shape, {"affine": draw(st.booleans())}
    if kind == "groupnorm":
        return "groupnorm", shape, {"num_groups": draw(st.integers(1, 8)), "affine": draw(st.booleans())}
    k = draw(st.integers(1, len(shape)))
    trailing = list(shape[-k:])
    if draw(st.booleans()):
        trailing[0] = draw(st.integers(1, 8))  # maybe wrong
    ln_args: dict[str, Any] = {
        "normalized_shape": trailing,
        "elementwise_affine": draw(st.booleans()),
        "bias": draw(st.booleans()),
    }
    return "layernorm", shape, ln_args


@pytest.mark.torch
@given(norm_case())
@SETTINGS
def test_norms_match_torch(case: tuple[str, tuple[int, ...], dict[str, Any]]) -> None:
    assert_matches_torch(*case)


@pytest.mark.torch
@given(
    shape=st.lists(st.integers(1, 6), min_size=1, max_size=3).map(tuple),
    num_parameters=st.integers(1, 6),
)
@SETTINGS
def test_prelu_matches_torch(shape: tuple[int, ...], num_parameters: int) -> None:
    assert_matches_torch("prelu", shape, {"num_parameters": num_parameters})


ELEMENTWISE = [
    "relu", "relu6", "leaky_relu", "elu", "gelu", "silu", "sigmoid", "tanh", "hardswish", "hardsigmoid",
    "dropout", "identity",
]  # fmt: skip


@pytest.mark.torch
@pytest.mark.parametrize("name", ELEMENTWISE)
def test_elementwise_match_torch(name: str) -> None:
    assert_matches_torch(name, (3, 5, 4), {})


@pytest.mark.torch
@pytest.mark.parametrize("dim", [None, -4, -3, 0, 1, 3, 4])
def test_softmax_dim_matches_torch(dim: int | None) -> None:
    assert_matches_torch("softmax", (3, 5, 4), {"dim": dim})


@pytest.mark.torch
@pytest.mark.parametrize("n", [1, 2, 3])
def test_dropout_nd_matches_torch(n: int) -> None:
    assert_matches_torch(f"dropout{n}d", (3, *([4] * n)), {"p": 0.2})


@pytest.mark.torch
def test_every_layer_type_builds_in_torch() -> None:
    # the registry's torch_name exists for every type: in torch.nn, or among our own modules
    from shapecalc import torch_layers

    for lt in LAYERS.values():
        if lt.source == "shapecalc":
            assert lt.torch_name in torch_layers.NAMES and not hasattr(torch.nn, lt.torch_name), lt.name
        else:
            assert lt.source == "nn" and hasattr(torch.nn, lt.torch_name), lt.name


@pytest.mark.torch
def test_instancenorm_refuses_a_single_spatial_element() -> None:
    # found by the export property test: torch normalises each sample by its own statistics
    lt = lookup("instancenorm1d")
    assert lt is not None
    with pytest.raises(LayerConfigError) as info:
        lt.infer((4, 1), {})
    assert info.value.message == "instancenorm1d needs more than 1 spatial element per channel, but the input is [4, 1]"
    assert lt.infer((4, 2), {}).output == (4, 2)
    with pytest.raises(ValueError, match="more than 1 spatial element"):
        torch.nn.InstanceNorm1d(4).eval()(torch.zeros(2, 4, 1))


# --------------------------------------------------------------------------- version 2 layer types

FINITE = st.floats(-4, 4, allow_nan=False, allow_infinity=False)


@st.composite
def activation_case(draw: st.DrawFn) -> tuple[str, tuple[int, ...], dict[str, Any]]:
    shape = tuple(draw(st.lists(st.integers(1, 5), min_size=1, max_size=4)))
    name = draw(st.sampled_from([
        "mish", "softplus", "softsign", "hardtanh", "selu", "celu", "rrelu", "tanhshrink", "logsigmoid",
        "hardshrink", "softshrink", "threshold", "log_softmax", "softmin", "softmax2d",
    ]))  # fmt: skip
    bound = st.one_of(FINITE, st.sampled_from([float("inf"), float("-inf"), 0.0]))
    options: dict[str, st.SearchStrategy[Any]] = {
        "softplus": st.fixed_dictionaries({}, optional={"beta": FINITE, "threshold": FINITE}),
        "hardtanh": st.fixed_dictionaries({}, optional={"min_val": bound, "max_val": bound}),
        "celu": st.fixed_dictionaries({}, optional={"alpha": st.one_of(FINITE, st.just(0.0))}),
        "rrelu": st.fixed_dictionaries({}, optional={"lower": FINITE, "upper": FINITE}),
        "hardshrink": st.fixed_dictionaries({}, optional={"lambd": FINITE}),
        "softshrink": st.fixed_dictionaries({}, optional={"lambd": FINITE}),
        "threshold": st.fixed_dictionaries({"threshold": bound, "value": bound}),
        "log_softmax": st.fixed_dictionaries({}, optional={"dim": st.integers(-5, 4)}),
        "softmin": st.fixed_dictionaries({}, optional={"dim": st.integers(-5, 4)}),
    }
    args = draw(options.get(name, st.just({})))
    if "inplace" in lookup(name).arg_names and draw(st.booleans()):  # type: ignore[union-attr]
        args["inplace"] = draw(st.booleans())
    return name, shape, args


@pytest.mark.torch
@given(activation_case())
@SETTINGS
def test_v2_activations_match_torch(case: tuple[str, tuple[int, ...], dict[str, Any]]) -> None:
    name, shape, args = case
    alpha = args.get("alpha", 1.0)
    if name == "celu" and alpha and math.isinf(1 / alpha):
        # deliberate: torch takes an alpha so small that 1/alpha is infinite (and computes garbage)
        with pytest.raises(LayerConfigError, match=r"at least 2\.94e-39 in size"):
            _lt(name).infer(shape, args)
        return
    if name == "softmax2d" and len(shape) == 2:
        # deliberate: torch takes a 3-d batch as one unbatched [C, H, W], a softmax across the samples
        with pytest.raises(LayerConfigError, match=r"softmax2d expects a per-sample input of \[C, H, W\]"):
            _lt(name).infer(shape, args)
        return
    assert_matches_torch(name, shape, args)


def _refuses_batch_axis(name: str, shape: tuple[int, ...], args: Mapping[str, Any], dim: int) -> bool:
    """Deliberate: a layer that would act across the samples (torch's dim 0) is refused."""
    rank = len(shape) + 1
    if -rank <= dim < rank and dim % rank == 0:
        with pytest.raises(LayerConfigError, match="is the batch axis"):
            _lt(name).infer(shape, args)
        return True
    return False


@pytest.mark.torch
@given(shape=st.lists(st.integers(1, 6), min_size=1, max_size=4).map(tuple), dim=st.integers(-5, 4))
@SETTINGS
def test_glu_matches_torch(shape: tuple[int, ...], dim: int) -> None:
    if not _refuses_batch_axis("glu", shape, {"dim": dim}, dim):
        assert_matches_torch("glu", shape, {"dim": dim})


@st.composite
def pad_case(draw: st.DrawFn) -> tuple[str, tuple[int, ...], dict[str, Any]]:
    n = draw(NDIMS)
    mode = draw(st.sampled_from(["reflection", "replication", "constant", "zero", "circular"]))
    if (mode, n) == ("zero", 2):
        mode = "constant"  # zeropad2d is version 1's: test_zeropad_matches_torch
    name = f"zeropad{n}d" if mode == "zero" else f"{mode}_pad{n}d"
    shape = tuple(draw(st.lists(st.integers(1, 6), min_size=max(1, n - 1), max_size=n + 2)))
    amount = st.integers(-4, 6)
    args: dict[str, Any] = {"padding": draw(st.one_of(amount, st.lists(amount, min_size=2 * n, max_size=2 * n)))}
    if mode == "constant":
        args["value"] = draw(st.one_of(FINITE, st.just(float("-inf"))))
    return name, shape, args


@pytest.mark.torch
@given(pad_case())
@SETTINGS
def test_pads_match_torch(case: tuple[str, tuple[int, ...], dict[str, Any]]) -> None:
    name, shape, args = case
    n = int(name[-2])
    if len(shape) < n and ("zeropad" in name or "constant" in name):
        # deliberate: torch would pad the batch axis
        with pytest.raises(LayerConfigError, match="the batch axis would be padded"):
            _lt(name).infer(shape, args)
        return
    assert_matches_torch(name, shape, args)


@pytest.mark.torch
@given(
    shape=st.lists(st.integers(1, 12), min_size=2, max_size=4).map(tuple),
    factor=st.integers(1, 3),
    unshuffle=st.booleans(),
)
@SETTINGS
def test_pixel_shuffle_matches_torch(shape: tuple[int, ...], factor: int, unshuffle: bool) -> None:
    name, key = ("pixel_unshuffle", "downscale_factor") if unshuffle else ("pixel_shuffle", "upscale_factor")
    if len(shape) != 3:
        # deliberate: torch shuffles the last three axes of the batch, which for a [C, L] sample are
        # the batch axis and for a 4-axis sample a spatial axis taken for the channels
        with pytest.raises(LayerConfigError, match=r"expects a per-sample input of \[C, H, W\]"):
            _lt(name).infer(shape, {key: factor})
        return
    assert_matches_torch(name, shape, {key: factor})


@pytest.mark.torch
@given(shape=st.lists(st.integers(1, 8), min_size=1, max_size=4).map(tuple), groups=st.integers(1, 5))
@SETTINGS
def test_channel_shuffle_matches_torch(shape: tuple[int, ...], groups: int) -> None:
    assert_matches_torch("channel_shuffle", shape, {"groups": groups})


@pytest.mark.torch
@given(
    shape=st.lists(st.integers(1, 6), min_size=1, max_size=5).map(tuple),
    size=st.integers(1, 6),
    extra=st.fixed_dictionaries({}, optional={"alpha": FINITE, "beta": FINITE, "k": FINITE}),
)
@SETTINGS
def test_local_response_norm_matches_torch(shape: tuple[int, ...], size: int, extra: dict[str, Any]) -> None:
    assert_matches_torch("local_response_norm", shape, {"size": size, **extra})


@pytest.mark.torch
@given(
    shape=st.lists(st.integers(1, 6), min_size=1, max_size=4).map(tuple),
    affine=st.booleans(),
    bias=st.booleans(),
    given_c=st.one_of(st.none(), st.integers(1, 6)),
)
@SETTINGS
def test_layernorm2d_matches_torch(shape: tuple[int, ...], affine: bool, bias: bool, given_c: int | None) -> None:
    args: dict[str, Any] = {"elementwise_affine": affine, "bias": bias}
    if given_c is not None:
        args["normalized_shape"] = given_c
    if given_c is not None and given_c != shape[0] and len(shape) == 3:
        # torch would normalise the wrong axis or fail; a wrong channel count is refused either way
        with pytest.raises(LayerConfigError, match="normalized_shape is"):
            _lt("layernorm2d").infer(shape, args)
        return
    assert_matches_torch("layernorm2d", shape, args)


@pytest.mark.torch
@given(shape=st.lists(st.integers(1, 5), min_size=1, max_size=4).map(tuple), data=st.data())
@SETTINGS
def test_permute_matches_torch(shape: tuple[int, ...], data: st.DataObject) -> None:
    rank = len(shape) + 1
    dims = data.draw(
        st.one_of(
            st.permutations(list(range(rank))),
            st.permutations(list(range(rank))).map(lambda d: [x - rank if x and x % 2 else x for x in d]),
            st.lists(st.integers(-rank - 1, rank), min_size=1, max_size=rank + 1),
        )
    )
    norm = [d % rank for d in dims]
    if len(dims) == rank and all(-rank <= d < rank for d in dims) and sorted(norm) == list(range(rank)) and norm[0]:
        # deliberate: torch would move the batch axis; refused
        with pytest.raises(LayerConfigError, match=r"moves the batch axis: dims\[0\] must be 0"):
            _lt("permute").infer(shape, {"dims": dims})
        return
    assert_matches_torch("permute", shape, {"dims": dims})


@pytest.mark.torch
@given(
    shape=st.lists(st.integers(1, 8), min_size=1, max_size=3).map(tuple),
    dim=st.integers(-4, 3),
    sizes=st.lists(st.sampled_from([1, 2, 3, 4, -1]), min_size=1, max_size=3),
)
@SETTINGS
def test_unflatten_matches_torch(shape: tuple[int, ...], dim: int, sizes: list[int]) -> None:
    args = {"dim": dim, "unflattened_size": sizes}
    if sizes.count(-1) > 1:
        with pytest.raises(LayerConfigError, match="may hold -1"):
            _lt("unflatten").infer(shape, args)
        return
    if not _refuses_batch_axis("unflatten", shape, args, dim):
        assert_matches_torch("unflatten", shape, args)


@pytest.mark.torch
@given(
    shape=st.lists(st.integers(1, 5), min_size=1, max_size=4).map(tuple),
    dim=st.one_of(st.integers(-5, 4), st.lists(st.integers(-5, 4), min_size=1, max_size=3)),
    keepdim=st.booleans(),
)
@SETTINGS
def test_mean_matches_torch(shape: tuple[int, ...], dim: Any, keepdim: bool) -> None:
    rank = len(shape) + 1
    dims = [dim] if isinstance(dim, int) else dim
    args = {"dim": dim, "keepdim": keepdim}
    in_range = all(-rank <= d < rank for d in dims)
    if in_range and any(d % rank == 0 for d in dims):
        with pytest.raises(LayerConfigError, match="is the batch axis"):
            _lt("mean").infer(shape, args)
        return
    if in_range and not keepdim and len({d % rank for d in dims}) == len(dims) == len(shape):
        # deliberate: torch leaves one number per sample, which no layer can take
        with pytest.raises(LayerConfigError, match="leaving no axis per sample"):
            _lt("mean").infer(shape, args)
        return
    assert_matches_torch("mean", shape, args)


@pytest.mark.torch
@given(
    shape=st.lists(st.integers(1, 6), min_size=1, max_size=4).map(tuple),
    init=st.one_of(st.none(), FINITE),
)
@SETTINGS
def test_layer_scale_matches_torch(shape: tuple[int, ...], init: float | None) -> None:
    assert_matches_torch("layer_scale", shape, {} if init is None else {"init": init})


@pytest.mark.torch
@given(
    shape=st.lists(st.integers(1, 6), min_size=1, max_size=4).map(tuple),
    p=st.floats(0, 1),
    mode=st.sampled_from(["row", "batch"]),
)
@SETTINGS
def test_stochastic_depth_matches_torch(shape: tuple[int, ...], p: float, mode: str) -> None:
    assert_matches_torch("stochastic_depth", shape, {"p": p, "mode": mode})


@pytest.mark.torch
def test_own_modules_compute_what_they_mirror() -> None:
    # values, not only shapes: each of our modules against the torch expression it stands for
    from shapecalc import torch_layers

    torch.manual_seed(0)
    x = torch.randn(2, 6, 5, 4)
    ln = torch_layers.LayerNorm2d(6, eps=1e-6)
    with torch.no_grad():
        ln.weight.copy_(torch.randn(6))
        ln.bias.copy_(torch.randn(6))
    mu = x.mean(1, keepdim=True)
    var = x.var(1, unbiased=False, keepdim=True)
    by_hand = (x - mu) / torch.sqrt(var + 1e-6) * ln.weight[:, None, None] + ln.bias[:, None, None]
    torch.testing.assert_close(ln(x), by_hand)
    torch.testing.assert_close(torch_layers.Permute([0, 2, 3, 1])(x), x.permute(0, 2, 3, 1))
    torch.testing.assert_close(torch_layers.Mean([2, 3])(x), x.mean((2, 3)))
    scale = torch_layers.LayerScale((6, 1, 1), init=0.5)
    torch.testing.assert_close(scale(x), x * 0.5)
    drop = torch_layers.StochasticDepth(0.5, "row")
    assert torch.equal(drop.eval()(x), x)
    kept = drop.train()(torch.ones(1000, 1))
    # every sample is kept (scaled by 1 / (1 - p) = 2) or dropped
    assert set(kept.flatten().tolist()) <= {0.0, 2.0} and 300 < int(kept.sum().item()) // 2 < 700
    assert torch.equal(torch_layers.StochasticDepth(1.0, "batch").train()(x), torch.zeros_like(x))


def test_float_argument_hints_and_finiteness() -> None:
    lt = _lt("layer_scale")
    with pytest.raises(LayerConfigError) as e:
        lt.check_arg("init", "1e-6")
    assert str(e.value) == (
        "layer_scale init must be a finite number, not '1e-6': YAML reads 1e-6 as a string; write it with a dot,"
        " as 1.0e-6"
    )
    with pytest.raises(LayerConfigError) as e:
        _lt("layernorm2d").check_arg("eps", "1E-5")
    assert str(e.value).endswith("YAML reads 1E-5 as a string; write it with a dot, as 1.0e-5")
    with pytest.raises(LayerConfigError, match="must be a finite number, not nan"):
        _lt("softplus").check_arg("beta", float("nan"))
    with pytest.raises(LayerConfigError, match="must be a finite number, not inf"):
        _lt("leaky_relu").check_arg("negative_slope", float("inf"))
    # a bound where torch gives infinity a meaning
    assert _lt("hardtanh").check_arg("max_val", float("inf")) == float("inf")
    with pytest.raises(LayerConfigError, match=r"must be a number \(.inf and -.inf allowed\), not nan"):
        _lt("hardtanh").check_arg("max_val", float("nan"))


def test_v2_exact_numbers() -> None:
    # ConvNeXt-T's first block: layernorm2d 96 channels, layer scale [96, 1, 1]
    res = _lt("layernorm2d").infer((96, 56, 56), {"eps": 1e-6})
    assert (res.params, res.tensors) == (192, (("weight", (96,)), ("bias", (96,))))
    res = _lt("layer_scale").infer((96, 56, 56), {})
    assert (res.params, res.tensors) == (96, (("scale", (96, 1, 1)),))
    assert res.torch_kwargs == {"shape": (96, 1, 1), "init": 1e-6}
    assert _lt("permute").infer((96, 56, 56), {"dims": [0, 2, 3, 1]}).output == (56, 56, 96)
    assert _lt("pixel_shuffle").infer((12, 5, 7), {"upscale_factor": 2}).output == (3, 10, 14)
    assert _lt("pixel_unshuffle").infer((3, 10, 14), {"downscale_factor": 2}).output == (12, 5, 7)
    assert _lt("glu").infer((8, 6), {"dim": 1}).output == (4, 6)
    assert _lt("reflection_pad2d").infer((3, 7, 7), {"padding": [1, 2, 3, 4]}).output == (3, 14, 10)
    assert _lt("mean").infer((64, 7, 7), {"dim": [2, 3]}).output == (64,)
    assert _lt("unflatten").infer((12, 5), {"dim": 1, "unflattened_size": [3, -1]}).output == (3, 4, 5)
    with pytest.raises(LayerConfigError) as e:
        _lt("channel_shuffle").infer((116, 28, 28), {"groups": 3})
    assert str(e.value) == "groups 3 must divide the 116 channels"
    with pytest.raises(LayerConfigError) as e:
        _lt("permute").infer((3, 4, 5), {"dims": [1, 0, 2, 3]})
    assert str(e.value) == "dims [1, 0, 2, 3] moves the batch axis: dims[0] must be 0"
