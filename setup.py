"""Build the C extension modules of aiomisc_c.

Environment switches:

* ``AIOMISC_C_NO_EXTENSIONS=1``: build a pure-Python package (no C at all);
* ``AIOMISC_C_DEBUG_BUILD=1``: ``-O0 -g3`` with asserts enabled;
* ``AIOMISC_C_SANITIZE=1``: AddressSanitizer + UndefinedBehaviorSanitizer;
* ``AIOMISC_C_WERROR=1``: warnings are errors (CI sets it).
"""
import os
import platform
import sys

from setuptools import Extension, setup


def env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in (
        "1", "enable", "enabled", "on", "true", "yes",
    )


# The primitives implemented in C: each ``csrc/<name>.c`` builds
# ``aiomisc_c._<name>`` (one primitive per C file; shared headers live in
# ``csrc/common/``).
C_PRIMITIVES = tuple(sorted(
    name[:-2] for name in os.listdir("csrc") if name.endswith(".c")
))


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

    return [
        Extension(
            f"aiomisc_c._{name}",
            sources=[f"csrc/{name}.c"],
            depends=[
                os.path.join("csrc", "common", header)
                for header in sorted(os.listdir(os.path.join("csrc", "common")))
            ],
            include_dirs=["csrc"],
            extra_compile_args=compile_args,
            extra_link_args=link_args,
            undef_macros=undef_macros,
        )
        for name in C_PRIMITIVES
    ]


setup(ext_modules=extensions())
