"""Bad input raises the library's error class as a Python exception, with
the command's message (the hostile cases of tests/cli/robustness_test.cpp
and tests/robustness_test.cpp), never a crash; nothing is written."""
import os

import numpy as np
import onnx
import pytest

import onnx_reinit
from conftest import SOURCE, dense_model, run_cli

TINY = str(SOURCE / "examples/models/tiny_net.onnx")


def raises(cls, fn, *mentions, builtin=None):
    with pytest.raises(cls) as info:
        fn()
    assert isinstance(info.value, onnx_reinit.Error)
    if builtin is not None:
        assert isinstance(info.value, builtin)
    for m in mentions:
        assert m in str(info.value), str(info.value)
    return info.value


def hostile_models():
    good = dense_model().SerializeToString()
    negative = dense_model()
    negative.graph.initializer[0].dims[0] = -8
    overflow = dense_model()
    overflow.graph.initializer[0].dims[:] = [1 << 62, 1 << 62]
    huge = dense_model()
    huge.graph.initializer[0].dims[:] = [1 << 20, 1 << 20]
    return [
        ("truncated", good[: len(good) // 2], onnx_reinit.ModelError, "corrupt or truncated protobuf"),
        ("garbage", b"\xff" * 64, onnx_reinit.ModelError, "corrupt or truncated protobuf"),
        ("negative", negative.SerializeToString(), onnx_reinit.ModelError, "negative dimension (-8)"),
        ("overflow", overflow.SerializeToString(), onnx_reinit.ModelError, "overflows int64"),
        ("huge", huge.SerializeToString(), onnx_reinit.LimitError, "tensor 'w' is 4096.0 GiB"),
    ]


@pytest.mark.parametrize("name,raw,cls,message", hostile_models(),
                         ids=[h[0] for h in hostile_models()])
def test_hostile_models_raise_model_errors(tmp, name, raw, cls, message):
    for call in (onnx_reinit.reinit, onnx_reinit.plan):
        raises(cls, lambda: call(raw), message, builtin=ValueError)
    path = tmp / f"{name}.onnx"
    path.write_bytes(raw)
    before = sorted(os.listdir(tmp))
    raises(cls, lambda: onnx_reinit.reinit(str(path), output=tmp / "out.onnx"), message)
    assert sorted(os.listdir(tmp)) == before
    # The command says the same, with exit status 1.
    r = run_cli(path, "-o", tmp / "out.onnx", check=False)
    assert r.returncode == 1 and message in r.stderr


def test_size_limits_are_limit_errors():
    raw = dense_model(64, 64).SerializeToString()
    e = raises(onnx_reinit.LimitError, lambda: onnx_reinit.reinit(raw, max_tensor_bytes=1024),
               "tensor 'w' is 16384 bytes", "per-tensor limit of 1024 bytes")
    assert isinstance(e, onnx_reinit.ModelError)
    raises(onnx_reinit.LimitError, lambda: onnx_reinit.plan(raw, max_total_bytes=10000),
           "total limit of 10000 bytes")


def test_usage_errors_are_value_errors(tmp):
    raises(onnx_reinit.UsageError, lambda: onnx_reinit.reinit(42), "expected an onnx.ModelProto",
           builtin=ValueError)
    raises(onnx_reinit.UsageError, lambda: onnx_reinit.reinit(TINY, seed=-1), "seed")
    raises(onnx_reinit.UsageError, lambda: onnx_reinit.reinit(TINY, seed="1"), "seed")
    raises(onnx_reinit.UsageError, lambda: onnx_reinit.reinit(TINY, fan_convention="keras"))
    raises(onnx_reinit.UsageError, lambda: onnx_reinit.reinit(TINY, calibrate="magic"))
    raises(onnx_reinit.UsageError, lambda: onnx_reinit.reinit(TINY, maps=["a.=b."]), "--from")
    raises(onnx_reinit.UsageError, lambda: onnx_reinit.reinit(TINY, output=TINY), "in-place")
    raises(onnx_reinit.UsageError, lambda: onnx_reinit.reinit(TINY, rules=[1]), "rules")


def test_rule_errors(tmp):
    raises(onnx_reinit.RuleError, lambda: onnx_reinit.reinit(TINY, rules=["conv1.weight"]),
           builtin=ValueError)
    deep = "role:weight=normal(std=" + "(" * 30000 + "1" + ")" * 30000 + ")"
    raises(onnx_reinit.RuleError, lambda: onnx_reinit.plan(TINY, rules=[deep]), "deep")
    raises(onnx_reinit.RuleError, lambda: onnx_reinit.plan(TINY, preset="no-such-preset"))


def test_strategy_and_parameter_errors():
    raises(onnx_reinit.UnknownStrategyError,
           lambda: onnx_reinit.reinit(TINY, rules=["role:weight=kaiming_normall"]),
           "kaiming_normal", builtin=ValueError)
    raises(onnx_reinit.ParamError,
           lambda: onnx_reinit.plan(TINY, rules=["role:weight=normal(std=-1)"]), "std")
    raises(onnx_reinit.UnknownStrategyError, lambda: onnx_reinit.sample("nope", (2, 2)))
    raises(onnx_reinit.ParamError, lambda: onnx_reinit.sample("normal", (2, 2), std=-1.0), "std")
    raises(onnx_reinit.ParamError, lambda: onnx_reinit.sample("normal", (2, 2), stdd=1.0), "stdd")
    raises(onnx_reinit.ParamError, lambda: onnx_reinit.sample("normal", (2, 2), std=[1]))
    raises(onnx_reinit.UnknownStrategyError, lambda: onnx_reinit.describe("kaiming_normall"),
           "kaiming_normal")


def test_files_that_cannot_be_read_or_written_are_os_errors(tmp):
    raises(onnx_reinit.IOError, lambda: onnx_reinit.reinit(str(tmp / "missing.onnx")),
           "missing.onnx", builtin=OSError)
    out = tmp / "no" / "such" / "dir" / "out.onnx"
    raises(onnx_reinit.Error, lambda: onnx_reinit.reinit(TINY, output=out))
    assert not out.exists()


def test_external_data_of_a_model_in_memory_is_refused(tmp):
    m = dense_model(64, 64)
    path = tmp / "ext.onnx"
    onnx.save_model(m, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                    location="ext.data", size_threshold=0)
    in_memory = onnx.load(str(path), load_external_data=False)
    raises(onnx_reinit.ModelError, lambda: onnx_reinit.reinit(in_memory), "w")
    # By path it is read beside the model, as the command does.
    assert onnx_reinit.reinit(str(path)).graph.initializer[0].name == "w"


def test_errors_carry_where():
    e = raises(onnx_reinit.UsageError, lambda: onnx_reinit.sample("normal", (-1, 2)))
    assert e.where and e.what and str(e) == f"{e.what} ({e.where})"


def test_an_unknown_policy_is_refused(tmp):
    # policy=None is the command's default (signal); another name, or
    # anything not a name, is a usage error, a ValueError, from every call
    # that takes options, and nothing is written.
    for policy in ("fancy", 3):
        e = raises(onnx_reinit.UsageError,
                   lambda: onnx_reinit.reinit(TINY, policy=policy, output=tmp / "o.onnx"),
                   "policy", builtin=ValueError)
        assert e.where == "policy"
        raises(onnx_reinit.UsageError, lambda: onnx_reinit.plan(TINY, policy=policy), "policy")
    raises(onnx_reinit.UsageError, lambda: onnx_reinit.plan(TINY, output_rms=0), "output_rms")
    assert not (tmp / "o.onnx").exists()
    assert onnx_reinit.reinit(TINY, policy=None).graph.initializer
