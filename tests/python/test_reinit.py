"""onnx_reinit.reinit and onnx_reinit.plan give what the command gives:
the same model bytes, the same report and the same plan, for every kind of
model argument (ModelProto, bytes, path) and the options the command has."""
import json
import os

import numpy as np
import onnx
import pytest

import onnx_reinit
from conftest import CLI, SOURCE, corpus, corpus_ids, dense_model, run_cli

TINY = SOURCE / "examples/models/tiny_net.onnx"


def cli_rewrite(tmp, model, *args):
    out, report = tmp / "cli.onnx", tmp / "cli.json"
    run_cli(model, "-o", out, "--report", report, "-q", *args)
    return out.read_bytes(), json.loads(report.read_text())


def without_model(report):
    return {k: v for k, v in report.items() if k != "model"}


@pytest.mark.parametrize("model", corpus(), ids=corpus_ids())
def test_every_argument_kind_gives_the_command_bytes(tmp, model):
    want, want_report = cli_rewrite(tmp, model, "--seed", "7")
    proto = onnx.load(str(model))
    raw = model.read_bytes()
    for kind, arg in (("path", str(model)), ("ModelProto", proto), ("bytes", raw)):
        fresh, report = onnx_reinit.reinit(arg, seed=7, report=True)
        assert fresh.SerializeToString() == want, kind
        if kind == "path":
            assert report == want_report
        else:
            assert report["model"] == "<memory>"
            assert without_model(report) == without_model(want_report), kind


def test_buffers_are_models_as_bytes_are(tmp):
    want, _ = cli_rewrite(tmp, TINY, "--seed", "5")
    raw = TINY.read_bytes()
    for arg in (bytearray(raw), memoryview(raw)):
        assert onnx_reinit.reinit(arg, seed=5).SerializeToString() == want, type(arg).__name__
    with pytest.raises(onnx_reinit.UsageError):
        onnx_reinit.reinit(memoryview(raw)[::2], seed=5)  # not contiguous


def test_a_model_with_external_data_comes_back_whole(tmp):
    # Written through a scratch directory (the library writes only models
    # without external data into memory), read back with its data inline.
    run_cli(TINY, "-o", tmp / "ext.onnx", "--external-data", "ext.data", "-q")
    want, _ = cli_rewrite(tmp, tmp / "ext.onnx", "--seed", "2")
    fresh = onnx_reinit.reinit(str(tmp / "ext.onnx"), seed=2)
    onnx.save_model(fresh, str(tmp / "py.onnx"), save_as_external_data=True,
                    all_tensors_to_one_file=True, location="py.data")
    got = onnx.load(str(tmp / "py.onnx"))
    cli = onnx.load(str(tmp / "cli.onnx"))
    assert len(cli.graph.initializer) == len(got.graph.initializer)
    for a, b in zip(cli.graph.initializer, got.graph.initializer):
        assert a.name == b.name
        assert onnx.numpy_helper.to_array(a).tobytes() == onnx.numpy_helper.to_array(b).tobytes()
    assert want  # the command wrote a model


def test_output_writes_the_command_file(tmp):
    want, want_report = cli_rewrite(tmp, TINY, "--seed", "3", "--external-data", "w.data")
    out = tmp / "py" / "out.onnx"
    out.parent.mkdir()
    assert onnx_reinit.reinit(str(TINY), seed=3, output=out, external_data="w.data") is None
    assert out.read_bytes() == (tmp / "cli.onnx").read_bytes()
    assert (tmp / "py" / "w.data").read_bytes() == (tmp / "w.data").read_bytes()


@pytest.mark.parametrize("args,kwargs", [
    (["--seed", "123456789012345"], {"seed": 123456789012345}),
    (["--rule", "role:weight=orthogonal(gain=2)", "--rule", "*.bias=normal(std=0.01)"],
     {"rules": ["role:weight=orthogonal(gain=2)", "*.bias=normal(std=0.01)"]}),
    (["--only", "conv*"], {"only": ["conv*"]}),
    (["--skip", "fc*", "--skip", "bn*"], {"skip": ("fc*", "bn*")}),
    (["--fan-convention", "torch"], {"fan_convention": "torch"}),
    (["--threads", "1"], {"threads": 1}),
    (["--policy", "textbook"], {"policy": "textbook"}),
    (["--policy", "signal", "--output-rms", "0.5"], {"policy": "signal", "output_rms": 0.5}),
])
def test_options_give_the_command_bytes(tmp, args, kwargs):
    want, want_report = cli_rewrite(tmp, TINY, *args)
    fresh, report = onnx_reinit.reinit(str(TINY), report=True, **kwargs)
    assert fresh.SerializeToString() == want
    assert report == want_report


def test_rules_file_gives_the_command_bytes(tmp):
    rules = tmp / "rules.yaml"
    rules.write_text("rules:\n  - match: 'role:weight'\n    strategy: xavier_uniform\n")
    want, _ = cli_rewrite(tmp, TINY, "--rules", rules)
    assert onnx_reinit.reinit(str(TINY), rules_file=rules).SerializeToString() == want


@pytest.mark.parametrize("model,preset", [
    ("layernorm_relu_opset17.onnx", "small-head"),
    ("tokens_layernorm_gelu_opset17.onnx", ["small-head"]),
])
def test_presets_give_the_command_bytes(tmp, model, preset):
    model = SOURCE / "tests/exports/torch" / model
    want, want_report = cli_rewrite(tmp, model, "--preset", "small-head")
    fresh, report = onnx_reinit.reinit(str(model), preset=preset, report=True)
    assert fresh.SerializeToString() == want
    assert report == want_report


def test_transfer_gives_the_command_bytes(tmp):
    pretrained = tmp / "pretrained.onnx"
    run_cli(TINY, "-o", pretrained, "--seed", "99", "-q")
    want, want_report = cli_rewrite(tmp, TINY, "--from", pretrained, "--map", "conv1.=conv1.")
    fresh, report = onnx_reinit.reinit(str(TINY), from_=pretrained, maps={"conv1.": "conv1."},
                                       report=True)
    assert fresh.SerializeToString() == want
    assert report == want_report
    assert report["transfer"]["transferred"] > 0


def test_plan_records_are_the_json_plan_and_the_table(tmp):
    table = run_cli(TINY, "--plan", "--seed", "5").stdout
    doc = json.loads(run_cli(TINY, "--plan", "--json", "--seed", "5").stdout)
    for arg in (str(TINY), onnx.load(str(TINY))):
        plan = onnx_reinit.plan(arg, seed=5)
        assert len(plan) == len(doc["tensors"])
        for entry, want, row in zip(plan, doc["tensors"], table.splitlines()[1:]):
            for k, v in want.items():
                assert getattr(entry, k) == v, k
            assert repr(entry) == row
    assert str(onnx_reinit.plan(str(TINY), seed=5)) == table
    assert onnx_reinit.plan(str(TINY), seed=5).report == doc


def test_plan_fields_name_what_the_plan_decides():
    plan = onnx_reinit.plan(str(TINY))
    conv = next(e for e in plan if e.name == "conv1.weight")
    assert (conv.op if hasattr(conv, "op") else conv.consumer_op) == "Conv"
    assert conv.role == "weight" and conv.activation == "relu"
    assert conv.strategy == "kaiming_normal" and conv.params["mode"] == "fan_in"
    assert conv.fan_in == 27.0 and conv.receptive_field == 9.0
    assert "conv1.weight" in repr(conv) and "kaiming_normal" in repr(conv)
    with pytest.raises(AttributeError):
        conv.role = "bias"


def test_in_place_rewrites_the_file(tmp):
    model = tmp / "m.onnx"
    model.write_bytes(TINY.read_bytes())
    want, _ = cli_rewrite(tmp, TINY, "--seed", "2")
    onnx_reinit.reinit(str(model), seed=2, in_place=True)
    assert model.read_bytes() == want


def test_listings_are_the_command_texts():
    assert onnx_reinit.policy_text() == run_cli("--print-policy").stdout
    assert onnx_reinit.presets_text() == run_cli("--list-presets").stdout


def test_the_gil_is_released_while_reinit_works():
    """While one thread rewrites a 64 MB model in memory, another runs
    Python: with the GIL held through the call it could not run in the
    middle of it (the library takes it back only to make the bytes object
    it writes the model into)."""
    import threading
    import time
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.zeros((4096, 4096), dtype=np.float32), "w")
    g = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "big",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 4096])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 4096])],
                          [w])
    raw = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()
    window = {}

    def work():
        # The extension's call alone: reinit() then parses the bytes into a
        # ModelProto, which holds the GIL (Python's protobuf).
        window["start"] = time.perf_counter()
        window["model"] = onnx_reinit._ext.reinit(raw, None, onnx_reinit._options(seed=1), "", "",
                                                  False, False, "")["model"]
        window["end"] = time.perf_counter()

    ticks = []
    t = threading.Thread(target=work)
    t.start()
    while t.is_alive():
        ticks.append(time.perf_counter())
        time.sleep(0.001)
    t.join()
    span = window["end"] - window["start"]
    middle = (window["start"] + 0.3 * span, window["end"] - 0.3 * span)
    assert any(middle[0] < x < middle[1] for x in ticks), (span, len(ticks))
    fresh = onnx.ModelProto()
    fresh.ParseFromString(window["model"])
    assert numpy_helper.to_array(fresh.graph.initializer[0]).std() > 0
