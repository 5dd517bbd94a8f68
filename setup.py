"""Build steps pyproject.toml cannot declare: the BPF object inside every wheel.

`pip wheel .` / `python -m build` compile bpf/process.bpf.c with the same
recipe as the Makefile (bpf/build.py) into the wheel's collector/probe/, and
tag the wheel for the machine the object was built for (py3-none-<platform>):
the Python is pure, the object is not. The C fast paths (FAST_PATHS below)
are built for the CPython that builds the wheel; on another
Python 3 their files are not importable and the Python modules they mirror do
the work, so the tag stays py3-none. An editable install (`make venv`) uses
the checkout's object, which the Makefile builds.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from setuptools import Distribution, Extension, setup
from setuptools.command.build_py import build_py
from setuptools.errors import ExecError

try:
    from setuptools.command.bdist_wheel import bdist_wheel
except ImportError:  # setuptools < 70.1
    from wheel.bdist_wheel import bdist_wheel  # type: ignore[no-redef]

HERE = Path(__file__).resolve().parent
OBJECT = Path("collector", "probe", "process.bpf.o")


def _recipe():  # type: ignore[no-untyped-def]
    """bpf/build.py, loaded by path (bpf/ is not a package)."""
    spec = importlib.util.spec_from_file_location("bpf_build", HERE / "bpf" / "build.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


class BuildPyWithBpf(build_py):  # type: ignore[misc]
    """build_py, then the BPF object compiled into the build tree."""

    def run(self) -> None:
        super().run()
        if self.editable_mode:
            return
        recipe = _recipe()
        try:
            recipe.build(Path(self.build_lib) / OBJECT, Path(self.build_lib).parent / "bpf-build")
        except recipe.BuildError as exc:
            raise ExecError(str(exc)) from None


class BpfDistribution(Distribution):  # type: ignore[misc]
    """Not pure: the wheel holds a compiled object (installed to platlib)."""

    def has_ext_modules(self) -> bool:
        return True


class PlatformWheel(bdist_wheel):  # type: ignore[misc]
    """Any Python 3, no ABI, but only this architecture: the object is per-arch."""

    def get_tag(self) -> tuple[str, str, str]:
        _python, _abi, plat = super().get_tag()
        return "py3", "none", plat


# The C fast paths of the per-event work, each beside the module it mirrors: the
# ring walk, decode (which reads bpf/process.h), the exec_id and the JSON line,
# and the Kafka sink's message and produce loop.
# Optional: without a C compiler the package installs and those Python modules do
# the work (the same results, more CPU); tests/unit/test_*_native.py expect them built.
_C_FLAGS = ["-O2", "-Wall", "-Werror=implicit-function-declaration"]
FAST_PATHS = [
    Extension(name, [source], include_dirs=include, depends=["collector/_slots.h"],
              extra_compile_args=_C_FLAGS, optional=True)
    for name, source, include in (
        ("collector.probe._ring", "collector/probe/_ring.c", []),
        ("collector._decode", "collector/_decode.c", ["bpf", "collector"]),
        ("collector.enrich._exec_id", "collector/enrich/_exec_id.c", []),
        ("collector.enrich._cache", "collector/enrich/_cache.c", ["collector"]),
        ("collector.pipeline._reader", "collector/pipeline/_reader.c", []),
        ("collector.encode._jsonline", "collector/encode/_jsonline.c", []),
        ("collector.encode._avro", "collector/encode/_avro.c", []),
        ("sinks.kafka._produce", "sinks/kafka/_produce.c", []),
    )
]

setup(distclass=BpfDistribution, ext_modules=FAST_PATHS,
      cmdclass={"build_py": BuildPyWithBpf, "bdist_wheel": PlatformWheel})
