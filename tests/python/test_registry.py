"""The registry from Python: every strategy with its schema and the
--describe text as its doc, and sample() giving the bytes the tool writes."""
import json

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

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
        if (e.action != "planned" or e.strategy is None or e.forget_bias is not None
                or e.name not in written
                or e.graph != ""
                or e.strategy in ("requantize",) or e.dtype == "bfloat16"):
            continue
        got = onnx_reinit.sample(e.strategy, e.shape, seed=11, name=e.name, dtype=e.dtype,
                                 info=e, **e.params)
        want = numpy_helper.to_array(written[e.name])
        assert got.tobytes() == want.tobytes(), e.name
        checked += 1
    assert checked > 0 or not any(e.action == "planned" for e in onnx_reinit.plan(str(model)))


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
