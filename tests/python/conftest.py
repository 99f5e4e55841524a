"""Shared helpers of the Python module's tests (tests/python.cmake runs
them with the build tree's package on PYTHONPATH): the command to compare
with, the models to compare on, and small hand-built models."""
import glob
import os
import pathlib
import subprocess

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

SOURCE = pathlib.Path(__file__).resolve().parents[2]
CLI = os.environ.get("ONNX_REINIT_CLI", str(SOURCE / "build" / "bin" / "onnx-reinit"))
TESTDATA = pathlib.Path("/usr/share/libonnx-testdata/data/pytorch-converted")
REAL_CORPUS = pathlib.Path(os.environ.get("ONNX_REINIT_CORPUS_DIR",
                                          pathlib.Path.home() / ".cache/onnx-reinit/corpus"))


def corpus():
    """The models the byte-equality tests run on: the repo's example model
    and torch exports (one opset each), every fourth libonnx-testdata
    pytorch-converted model, and the real-model corpus when fetched
    (tools/fetch_corpus.sh)."""
    models = [SOURCE / "examples/models/tiny_net.onnx"]
    models += sorted(pathlib.Path(p) for p in glob.glob(str(SOURCE / "tests/exports/torch/*_opset17.onnx")))
    models += sorted(pathlib.Path(p) for p in glob.glob(str(TESTDATA / "*/model.onnx")))[::4]
    models += sorted(pathlib.Path(p) for p in glob.glob(str(REAL_CORPUS / "*.onnx")))
    return [m for m in models if m.exists()]


def corpus_ids():
    return [f"{m.parent.name}/{m.name}" for m in corpus()]


def run_cli(*args, check=True):
    r = subprocess.run([CLI, *map(str, args)], capture_output=True, text=True)
    if check and r.returncode != 0:
        raise AssertionError(f"onnx-reinit {' '.join(map(str, args))} failed ({r.returncode}): "
                             f"{r.stderr}")
    return r


def dense_model(n_in=8, n_out=4):
    """x @ w + b, relu: the robustness tests' model."""
    w = numpy_helper.from_array((np.arange(n_in * n_out, dtype=np.float32) * 1e-6 + 0.5)
                                .reshape(n_in, n_out), "w")
    b = numpy_helper.from_array(np.arange(n_out, dtype=np.float32) * 1e-3 + 0.25, "b")
    g = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["h0"]), helper.make_node("Add", ["h0", "b"], ["h1"]),
         helper.make_node("Relu", ["h1"], ["y"])],
        "dense", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, n_in])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, n_out])], [w, b])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


@pytest.fixture
def tmp(tmp_path):
    return tmp_path
