"""`cmake --install` puts a working package into Python's site directory
under the prefix: it imports from there (not from the build tree), finds
the installed standard plugin and ONNX Runtime, and rewrites a model."""
import os
import pathlib
import subprocess
import sys

import pytest

from conftest import SOURCE

BUILD = os.environ.get("ONNX_REINIT_BUILD_DIR")
PYTHONDIR = os.environ.get("ONNX_REINIT_INSTALL_PYTHONDIR")

CHECK = """
import sys, onnx_reinit
assert onnx_reinit.__file__.startswith(sys.argv[1]), onnx_reinit.__file__
names = [s.name for s in onnx_reinit.strategies()]
assert "kaiming_normal" in names, names
assert onnx_reinit.strategies()[0].plugin_path.startswith(sys.argv[1])
m = onnx_reinit.reinit(sys.argv[2], seed=1)
print("installed package:", len(names), "strategies,", len(m.graph.initializer), "initializers")
"""


@pytest.mark.skipif(not BUILD or not PYTHONDIR, reason="run by CTest (python_install)")
def test_installed_package_works_from_the_prefix(tmp):
    prefix = tmp / "prefix"
    subprocess.run(["cmake", "--install", BUILD, "--prefix", str(prefix)], check=True,
                   capture_output=True)
    site = prefix / PYTHONDIR
    assert (site / "onnx_reinit" / "__init__.py").exists()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "ONNX_REINIT_PLUGIN_PATH")}
    env["PYTHONPATH"] = str(site)
    r = subprocess.run([sys.executable, "-c", CHECK, str(prefix),
                        str(SOURCE / "examples/models/tiny_net.onnx")],
                       env=env, capture_output=True, text=True, cwd=tmp)
    assert r.returncode == 0, r.stderr
    assert "installed package:" in r.stdout
