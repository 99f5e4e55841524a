#!/usr/bin/python3
"""torch.nn.init.orthogonal_ on the shapes given (ROWSxCOLS ...), for the
benchmark: prints JSON with the seconds the orthogonal_ calls took (tensors
allocated, torch imported, before the clock starts), and which BLAS/LAPACK
libraries the process loaded, with OpenBLAS's own report of its build, core
type and thread count when it is one of them."""
import ctypes
import json
import sys
import time

import torch


def blas_report():
    libs = sorted({line.split()[-1] for line in open("/proc/self/maps")
                   if "/" in line and ("blas" in line or "lapack" in line)})
    info = {"libraries": libs}
    for lib in libs:
        try:
            handle = ctypes.CDLL(lib)
            handle.openblas_get_config.restype = ctypes.c_char_p
            handle.openblas_get_corename.restype = ctypes.c_char_p
        except (OSError, AttributeError):
            continue
        info["openblas"] = {"library": lib,
                            "config": handle.openblas_get_config().decode(),
                            "core": handle.openblas_get_corename().decode(),
                            "threads": handle.openblas_get_num_threads()}
        break
    return info


def main():
    shapes = [tuple(int(d) for d in arg.split("x")) for arg in sys.argv[1:]]
    tensors = [torch.empty(s) for s in shapes]
    start = time.perf_counter()
    for t in tensors:
        torch.nn.init.orthogonal_(t)
    seconds = time.perf_counter() - start
    report = {"seconds": seconds, "torch": torch.__version__,
              "torch_threads": torch.get_num_threads()}
    report.update(blas_report())
    print(json.dumps(report))


if __name__ == "__main__":
    main()
