"""``python -m aiomisc_c.alias script.py [args]`` or ``python -m
aiomisc_c.alias -m module [args]``: run a program written for aiomisc on
aiomisc_c (the alias is installed by importing the package)."""
from __future__ import annotations

import os
import runpy
import sys
from typing import List, NoReturn, Optional

USAGE = (
    "usage: python -m aiomisc_c.alias script.py [args ...]\n"
    "       python -m aiomisc_c.alias -m module [args ...]\n"
    "Runs the program with 'import aiomisc' (and aiomisc_log, "
    "aiomisc_worker) resolving to aiomisc_c."
)


def _usage(message: Optional[str] = None) -> NoReturn:
    if message:
        print(f"error: {message}", file=sys.stderr)
    print(USAGE, file=sys.stderr)
    raise SystemExit(2)


def main(argv: Optional[List[str]] = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        if args:
            print(USAGE)
            return
        _usage("nothing to run")
    if args[0] == "-m":
        if len(args) < 2:
            _usage("-m needs a module name")
        module = args[1]
        # As "python -m": the module's path in argv[0], the current
        # directory first on sys.path (it already is, for "python -m").
        sys.argv = [module, *args[2:]]
        runpy.run_module(module, run_name="__main__", alter_sys=True)
        return
    if args[0].startswith("-"):
        _usage(f"unknown option {args[0]!r}")
    script = args[0]
    if not os.path.exists(script):
        _usage(f"can't open file {script!r}: no such file")
    # As "python script.py": the script's directory first on sys.path.
    sys.argv = [script, *args[1:]]
    sys.path[0] = os.path.dirname(os.path.abspath(script))
    runpy.run_path(script, run_name="__main__")


if __name__ == "__main__":
    main()
