"""Build the C extension modules of aiomisc_c.

Environment switches:

* ``AIOMISC_C_NO_EXTENSIONS=1``: build a pure-Python package (no C at all);
* ``AIOMISC_C_DEBUG_BUILD=1``: ``-O0 -g3`` with asserts enabled;
* ``AIOMISC_C_SANITIZE=1``: AddressSanitizer + UndefinedBehaviorSanitizer;
* ``AIOMISC_C_WERROR=1``: warnings are errors (CI sets it).

A change of these switches rebuilds the C modules even when an earlier build
in the same tree looks up to date; a compiler failure says how to install the
pure-Python package instead.
"""
import json
import os
import platform
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

NO_COMPILER_HINT = """
aiomisc_c: building the C extension modules failed (see the compiler
output above).  They need a C compiler and the Python headers (e.g.
"apt-get install gcc python3-dev").  To install the pure-Python twins
only, with the same API, run:

    AIOMISC_C_NO_EXTENSIONS=1 pip install .
"""


def env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in (
        "1", "enable", "enabled", "on", "true", "yes",
    )


# The primitives implemented in C: each folder ``csrc/<name>/`` builds
# ``aiomisc_c._<name>`` from its one translation unit ``module.c`` (the other
# files of the folder are the units it includes).  Headers shared by every
# module live in ``csrc/common/``.
def c_primitives() -> dict:
    primitives = {}
    for entry in sorted(os.listdir("csrc")):
        path = os.path.join("csrc", entry)
        if entry.endswith(".c") and os.path.isfile(path):
            raise RuntimeError(
                f"{path}: a C primitive is a folder csrc/<name>/ whose "
                f"module.c includes its units",
            )
        if entry != "common" and os.path.isfile(
            os.path.join(path, "module.c")
        ):
            primitives[entry] = (
                os.path.join(path, "module.c"),
                headers_of(path),
            )
    return primitives


def headers_of(folder: str) -> list:
    return [
        os.path.join(folder, name)
        for name in sorted(os.listdir(folder))
        if name.endswith(".h")
    ]


def extensions() -> list:
    if env_flag("AIOMISC_C_NO_EXTENSIONS"):
        return []
    if platform.python_implementation() != "CPython" or os.name != "posix":
        return []

    compile_args = ["-std=c11", "-Wall", "-Wextra"]
    link_args = []
    undef_macros = []
    if env_flag("AIOMISC_C_WERROR"):
        compile_args.append("-Werror")
    if env_flag("AIOMISC_C_DEBUG_BUILD") or env_flag("AIOMISC_C_SANITIZE"):
        compile_args += ["-O0", "-g3"]
        undef_macros.append("NDEBUG")
    else:
        compile_args += ["-O2"]
    if env_flag("AIOMISC_C_SANITIZE"):
        sanitize = [
            "-fsanitize=address,undefined",
            "-fno-omit-frame-pointer",
            "-fno-sanitize-recover=undefined",
        ]
        compile_args += sanitize
        link_args += sanitize

    common_headers = headers_of(os.path.join("csrc", "common"))
    return [
        Extension(
            f"aiomisc_c._{name}",
            sources=[source],
            depends=own_headers + common_headers,
            include_dirs=["csrc"],
            extra_compile_args=compile_args,
            extra_link_args=link_args,
            undef_macros=undef_macros,
        )
        for name, (source, own_headers) in c_primitives().items()
    ]


def build_flags(ext_modules: list) -> dict:
    """What decides the compiled code, besides the sources."""
    return {
        ext.name: {
            "compile": ext.extra_compile_args,
            "link": ext.extra_link_args,
            "undef": ext.undef_macros,
            "cc": os.environ.get("CC", ""),
            "cflags": os.environ.get("CFLAGS", ""),
        }
        for ext in ext_modules
    }


class BuildExt(build_ext):
    """build_ext that rebuilds when the build switches changed since the last
    build in this tree, and explains a compiler failure."""

    def flags_path(self) -> str:
        # One record per object directory: in-place and wheel builds share
        # build_temp, so objects compiled for one (say with the sanitizers)
        # must not be linked by the other under different switches.
        return os.path.join(self.build_temp, "aiomisc_c-flags.json")

    def run(self) -> None:
        flags = build_flags(self.extensions)
        path = self.flags_path()
        try:
            with open(path) as fp:
                previous = json.load(fp)
        except (OSError, ValueError):
            previous = None
        if previous != flags:
            self.force = True
        try:
            super().run()
        except Exception:
            sys.stderr.write(NO_COMPILER_HINT)
            raise
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as fp:
            json.dump(flags, fp, sort_keys=True)


setup(ext_modules=extensions(), cmdclass={"build_ext": BuildExt})
