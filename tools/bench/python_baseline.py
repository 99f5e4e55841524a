#!/usr/bin/python3
"""The python baseline of the benchmark: what a user writes today
with python3-onnx and numpy to reinitialize a model. Load (external data
included), replace each float32 initializer with numpy samples of a
shape-derived std, save.

    python_baseline.py MODEL OUT [--external-data NAME] [--seed N]

Run it with Debian's /usr/bin/python3 (python3-onnx, python3-numpy).
"""
import argparse
import math

import numpy as np
import onnx
from onnx import numpy_helper


def fan_in(shape):
    # A [K, N] MatMul/Gemm weight has K inputs; convolution-like weights
    # [M, C, k...] have C*k... inputs (as torch's _calculate_fan_in).
    if len(shape) == 2:
        return shape[0]
    return math.prod(shape[1:])


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("model")
    parser.add_argument("out")
    parser.add_argument("--external-data", default="")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    model = onnx.load(args.model)  # loads external data too
    rng = np.random.default_rng(args.seed)
    for i, init in enumerate(model.graph.initializer):
        if init.data_type != onnx.TensorProto.FLOAT:
            continue
        shape = tuple(init.dims)
        if len(shape) >= 2:
            # Kaiming normal, the most common hand-written choice.
            values = rng.standard_normal(shape, dtype=np.float32)
            values *= np.float32(math.sqrt(2.0 / fan_in(shape)))
        elif len(shape) == 1:
            values = np.zeros(shape, dtype=np.float32)  # biases, norm shifts
        else:
            continue  # scalar constants of the graph
        model.graph.initializer[i].CopyFrom(numpy_helper.from_array(values, init.name))

    if args.external_data:
        onnx.save_model(model, args.out, save_as_external_data=True,
                        all_tensors_to_one_file=True, location=args.external_data,
                        size_threshold=1024)
    else:
        onnx.save_model(model, args.out)


if __name__ == "__main__":
    main()
