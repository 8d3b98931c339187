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


# The primitives implemented in C.  A folder ``csrc/<name>/`` builds
# ``aiomisc_c._<name>`` from its one translation unit ``module.c`` (the other
# files of the folder are the units it includes); a flat ``csrc/<name>.c``
# still builds ``aiomisc_c._<name>`` while it waits to be split.  Headers
# shared by every module live in ``csrc/common/``.
def c_primitives() -> dict:
    primitives = {}
    for entry in sorted(os.listdir("csrc")):
        path = os.path.join("csrc", entry)
        if entry.endswith(".c") and os.path.isfile(path):
            primitives[entry[:-2]] = (path, [])
        elif entry != "common" and os.path.isfile(
            os.path.join(path, "module.c")
        ):
            if os.path.isfile(path + ".c"):
                raise RuntimeError(
                    f"both {path}.c and {path}/module.c build "
                    f"aiomisc_c._{entry}: remove one",
                )
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


setup(ext_modules=extensions())
