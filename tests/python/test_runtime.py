"""The runtime stage from Python: inspect() returns the --inspect --json
document, and calibrate="lsuv" with NumPy batches writes the bytes the
command writes with the same batch as --data files."""
import json

import numpy as np
import onnx
import pytest

import onnx_reinit
from conftest import SOURCE, run_cli

if not onnx_reinit._ext.runtime_available():
    pytest.skip("built without ONNX Runtime", allow_module_level=True)

TINY = SOURCE / "examples/models/tiny_net.onnx"
MLP = SOURCE / "tests/exports/torch/layernorm_relu_opset17.onnx"


def batch_for(model, seed=0):
    """One array per graph input, from its declared shape (batch 4 where free)."""
    rng = np.random.default_rng(seed)
    m = onnx.load(str(model))
    inits = {t.name for t in m.graph.initializer}
    arrays = {}
    for i in m.graph.input:
        if i.name in inits:
            continue
        shape = [d.dim_value if d.dim_value > 0 else 4 for d in i.type.tensor_type.shape.dim]
        if i.type.tensor_type.elem_type == onnx.TensorProto.INT64:
            arrays[i.name] = rng.integers(0, 5, size=shape).astype(np.int64)
        else:
            arrays[i.name] = rng.standard_normal(shape).astype(np.float32)
    return arrays


def data_dir(tmp, arrays):
    d = tmp / "data"
    d.mkdir()
    for name, a in arrays.items():
        np.save(d / f"{name}.npy", a)
    return d


def test_inspect_is_the_command_document():
    want = json.loads(run_cli(TINY, "--inspect", "--json").stdout)
    assert onnx_reinit.inspect(str(TINY)) == want
    got = onnx_reinit.inspect(onnx.load(str(TINY)))
    assert got["layers"] == want["layers"] and got["summary"] == want["summary"]
    assert any("nonfinite" in layer["flags"] for layer in got["layers"])


def test_inspect_with_numpy_data_is_the_command_with_data_files(tmp):
    arrays = batch_for(MLP, seed=3)
    want = json.loads(run_cli(MLP, "--inspect", "--json", "--data", data_dir(tmp, arrays)).stdout)
    got = onnx_reinit.inspect(str(MLP), data=arrays)
    assert got["layers"] == want["layers"]
    assert [i["shape"] for i in got["inputs"]] == [i["shape"] for i in want["inputs"]]
    # The batch matters: another one measures other figures.
    other = onnx_reinit.inspect(str(MLP), data=batch_for(MLP, seed=4))
    assert other["layers"] != got["layers"]


def test_calibrate_with_numpy_data_gives_the_command_bytes(tmp):
    arrays = batch_for(MLP, seed=1)
    d = data_dir(tmp, arrays)
    run_cli(MLP, "-o", tmp / "cli.onnx", "--report", tmp / "cli.json", "-q", "--seed", "4",
            "--calibrate", "lsuv", "--data", d)
    fresh, report = onnx_reinit.reinit(str(MLP), seed=4, calibrate="lsuv", data=arrays,
                                       report=True)
    assert fresh.SerializeToString() == (tmp / "cli.onnx").read_bytes()
    assert report == json.loads((tmp / "cli.json").read_text())
    assert any(t.get("lsuv_scale") is not None for t in report["tensors"])
    # The data directory itself works too.
    assert onnx_reinit.reinit(str(MLP), seed=4, calibrate="lsuv", data=str(d)) == fresh


def test_bad_data_is_a_usage_error():
    with pytest.raises(onnx_reinit.UsageError):
        onnx_reinit.inspect(str(MLP), data={"no_such_input": np.zeros((2, 2), np.float32)})
    with pytest.raises(onnx_reinit.UsageError):
        onnx_reinit.inspect(str(MLP), data={"x": np.zeros((2,), dtype=object)})
