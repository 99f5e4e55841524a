"""The registry from Python: every strategy with its schema and the
--describe text as its doc, and sample() giving the bytes the tool writes."""
import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import onnx_reinit
from conftest import SOURCE, corpus, corpus_ids, run_cli

TINY = str(SOURCE / "examples/models/tiny_net.onnx")


def test_strategies_are_the_command_list():
    listed = json.loads(run_cli("--list", "--json").stdout)
    got = onnx_reinit.strategies()
    assert [s.name for s in got] == [s["name"] for s in listed["strategies"]]
    for s in got:
        assert s.__doc__ == run_cli("--describe", s.name).stdout
        assert s.formula and s.summary and s.plugin_id
        for p in s.params:
            assert set(p) >= {"name", "type", "default", "help"}
    kaiming = next(s for s in got if s.name == "kaiming_normal")
    assert [p["name"] for p in kaiming.params] == ["a", "mode", "nonlinearity"]
    assert "fan_in" in next(p for p in kaiming.params if p["name"] == "mode")["choices"]
    assert onnx_reinit.describe("orthogonal") == run_cli("--describe", "orthogonal").stdout


def test_sample_is_deterministic_and_keyed_by_seed_and_name():
    a = onnx_reinit.sample("normal", (64, 32), seed=1, name="w", std=0.5)
    assert a.dtype == np.float32 and a.shape == (64, 32)
    assert np.array_equal(a, onnx_reinit.sample("normal", (64, 32), seed=1, name="w", std=0.5))
    assert not np.array_equal(a, onnx_reinit.sample("normal", (64, 32), seed=2, name="w", std=0.5))
    assert not np.array_equal(a, onnx_reinit.sample("normal", (64, 32), seed=1, name="v", std=0.5))
    # 2048 draws of N(0, 0.5): the std within 5 standard errors (0.5 / sqrt(2 * 2048) each).
    assert abs(a.std() - 0.5) < 5 * 0.5 / np.sqrt(2 * a.size)
    assert onnx_reinit.sample("normal", (3,), dtype="float64", std=1.0).dtype == np.float64
    assert onnx_reinit.sample("normal", (3,), dtype="float16", std=1.0).dtype == np.float16


def test_sample_fans_set_the_scale():
    # kaiming_normal (fan_in, relu gain sqrt 2): std = sqrt(2 / fan_in).
    w = onnx_reinit.sample("kaiming_normal", (256, 1024), seed=3, name="w", fan_in=1024,
                           fan_out=256, info={"gain": np.sqrt(2.0), "activation": "relu"})
    assert abs(w.std() - np.sqrt(2.0 / 1024)) < 5 * np.sqrt(2.0 / 1024) / np.sqrt(2 * w.size)


@pytest.mark.parametrize("model", corpus()[:12], ids=corpus_ids()[:12])
def test_sample_equals_the_bytes_in_a_rewritten_model(model):
    fresh = onnx_reinit.reinit(str(model), seed=11)
    written = {t.name: t for t in fresh.graph.initializer}
    checked = 0
    for e in onnx_reinit.plan(str(model), seed=11):
        if (e.action != "planned" or e.strategy is None or e.name not in written
                or e.graph != "" or e.strategy in ("requantize",)):
            continue
        got = onnx_reinit.sample(e.strategy, e.shape, seed=11, name=e.name, dtype=e.dtype,
                                 info=e, **e.params)
        assert got.tobytes() == stored_bytes(written[e.name]), e.name
        checked += 1
    assert checked > 0 or not any(e.action == "planned" for e in onnx_reinit.plan(str(model)))


def stored_bytes(t):
    """A tensor's little-endian element bytes as stored (raw_data, or the
    typed field: 16-bit floats as their bits in int32_data)."""
    if t.HasField("raw_data"):
        return t.raw_data
    if t.data_type in (TensorProto.BFLOAT16, TensorProto.FLOAT16):
        return np.array(t.int32_data, dtype=np.uint16).tobytes()
    return numpy_helper.to_array(t).tobytes()


def test_sample_applies_the_forget_gate_bias_the_plan_sets():
    # The default policy sets each LSTM forget-gate input bias to 1 after
    # the strategy: sample() with the plan record gives those bytes too.
    model = SOURCE / "tests/exports/torch/lstm_opset17.onnx"
    fresh = onnx_reinit.reinit(str(model), seed=4)
    written = {t.name: t for t in fresh.graph.initializer}
    biased = [e for e in onnx_reinit.plan(str(model), seed=4) if e.forget_bias is not None]
    assert biased
    for e in biased:
        assert e.adjustments and e.adjustments[0]["name"] == "forget_bias"
        got = onnx_reinit.sample(e.strategy, e.shape, seed=4, name=e.name, dtype=e.dtype,
                                 info=e, **e.params)
        assert got.tobytes() == stored_bytes(written[e.name]), e.name
        ones = np.zeros(got.size, dtype=bool)
        for begin, end in e.adjustments[0]["elements"]:
            ones[begin:end] = True
        assert ones.any() and np.all(got.reshape(-1)[ones] == e.forget_bias)
        assert not np.all(got.reshape(-1)[~ones] == e.forget_bias)
        # Without the plan's adjustments: the strategy's values alone.
        bare = onnx_reinit.sample(e.strategy, e.shape, seed=4, name=e.name, dtype=e.dtype,
                                  **e.params)
        assert not np.array_equal(bare, got)


def bfloat16_model():
    """x @ w + b in bfloat16 (ONNX stores w and b as bits in int32_data)."""
    def bf16(values, name):
        bits = (np.asarray(values, dtype=np.float32).view(np.uint32) >> 16).astype(np.uint16)
        t = TensorProto(name=name, data_type=TensorProto.BFLOAT16, dims=values.shape)
        t.int32_data.extend(int(b) for b in bits.reshape(-1))
        return t
    w = bf16(np.linspace(-1, 1, 64 * 32, dtype=np.float32).reshape(64, 32), "w")
    b = bf16(np.full(32, 0.5, dtype=np.float32), "b")
    g = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["h"]), helper.make_node("Add", ["h", "b"], ["y"])],
        "bf16", [helper.make_tensor_value_info("x", TensorProto.BFLOAT16, [None, 64])],
        [helper.make_tensor_value_info("y", TensorProto.BFLOAT16, [None, 32])], [w, b])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


def test_sample_gives_bfloat16_as_its_bits():
    model = bfloat16_model()
    fresh = onnx_reinit.reinit(model, seed=6, rules=["w=normal(std=0.5)"])
    e = next(e for e in onnx_reinit.plan(model, seed=6, rules=["w=normal(std=0.5)"])
             if e.name == "w")
    assert e.dtype == "bfloat16"
    got = onnx_reinit.sample(e.strategy, e.shape, seed=6, name="w", dtype="bfloat16", info=e,
                             **e.params)
    assert got.dtype == np.uint16 and got.shape == (64, 32)
    assert got.tobytes() == stored_bytes(next(t for t in fresh.graph.initializer
                                              if t.name == "w"))
    values = (got.astype(np.uint32) << 16).view(np.float32)
    assert abs(values.std() - 0.5) < 5 * 0.5 / np.sqrt(2 * values.size)
    # The float32 sample rounded to bfloat16 (ties to even) is the same tensor.
    f = onnx_reinit.sample(e.strategy, e.shape, seed=6, name="w", info=e, **e.params)
    u = f.view(np.uint32).astype(np.uint64)
    rounded = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)
    assert np.array_equal(rounded, got)


def test_the_gil_is_released_while_the_library_works():
    """While one thread samples a large tensor, another runs Python: with the
    GIL held through the call it could not run in the middle of it."""
    import threading
    import time

    window = {}

    def work():
        window["start"] = time.perf_counter()
        onnx_reinit.sample("normal", (8192, 2048), seed=1, name="big")
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


def test_concurrent_calls_give_the_same_bytes():
    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(4) as pool:
        models = list(pool.map(lambda s: onnx_reinit.reinit(TINY, seed=s % 2).SerializeToString(),
                               range(8)))
    assert models[0::2] == [models[0]] * 4 and models[1::2] == [models[1]] * 4
    assert models[0] != models[1]
