"""The one switch between the C extension modules and their Python twins.

``USE_C_EXTENSIONS`` is decided once, at import: false on interpreters other
than CPython and when ``AIOMISC_C_NO_EXTENSIONS`` is set to a true value.

A public module binds each twinned name in its own source, the way
``asyncio.futures`` does: the Python twin is what a type checker sees (and
what runs when the C module is missing), the C twin replaces it at run time::

    _c_twin = _compat.import_c_module("_circuit_breaker")
    if TYPE_CHECKING or _c_twin is None:
        from ._circuit_breaker_py import CircuitBreaker
    else:
        CircuitBreaker = _c_twin.CircuitBreaker

(the Python twins are imported only when they run: a program on the C twins
never loads them).  The module then registers the names with
:func:`bind_twins`, which keeps both twins reachable (``_PyName`` /
``_CName``) and records them for :func:`use_implementation`, the test
helper that rebinds every twinned name of every public module at once so
that each test runs against both twins.
"""
from __future__ import annotations

import contextlib
import importlib
import os
import signal
import sys
import types
import warnings
from typing import (
    Any, Callable, Dict, Iterable, Iterator, List, Mapping, Optional, Tuple,
)

_TRUE_VALUES = frozenset({"1", "enable", "enabled", "on", "true", "yes"})


def env_bool(name: str, default: str = "0") -> bool:
    """An aiomisc-style boolean environment variable."""
    return os.environ.get(name, default).strip().lower() in _TRUE_VALUES


USE_C_EXTENSIONS: bool = (
    sys.implementation.name == "cpython"
    and not env_bool("AIOMISC_C_NO_EXTENSIONS")
)


class TwinPairs(Mapping[str, Tuple[Any, Any]]):
    """Public name -> ``(python twin, c twin | None)`` of one primitive.

    The Python twins are imported on first need (reading an item, choosing
    the Python twins, or reading a ``_PyNAME`` attribute): a program that
    runs on the C twins never imports them.
    """

    def __init__(
        self,
        namespace: Dict[str, Any],
        load_python: Callable[[], Any],
        c_module: Any,
        names: List[str],
    ):
        self._namespace = namespace
        self._load_python = load_python
        self._python: Optional[Dict[str, Any]] = None
        self._c = {
            name: getattr(c_module, name) if c_module is not None else None
            for name in names
        }

    def python(self) -> Dict[str, Any]:
        """The Python twins by name, imported now if they were not yet."""
        if self._python is None:
            module = self._load_python()
            python = {name: getattr(module, name) for name in self._c}
            for name, obj in python.items():
                self._namespace[f"_Py{name}"] = obj
            self._python = python
        return self._python

    def __getitem__(self, name: str) -> Tuple[Any, Any]:
        c_obj = self._c[name]
        return self.python()[name], c_obj

    def __iter__(self) -> Iterator[str]:
        return iter(self._c)

    def __len__(self) -> int:
        return len(self._c)


# primitive name -> (module globals, the primitive's TwinPairs)
_TWINS: Dict[str, Tuple[Dict[str, Any], TwinPairs]] = {}
# primitive name -> other namespaces re-exporting some of its twinned names
_REEXPORTS: Dict[str, List[Tuple[Dict[str, Any], List[str]]]] = {}
# primitive name -> "c" or "python": what the public names are bound to now
_CHOSEN: Dict[str, str] = {}
# primitive name -> why the C twin is unavailable (None when it is available)
_C_MISSING: Dict[str, Optional[str]] = {}
# primitive name -> the module that binds its twins, for the primitives whose
# module is imported on first use (see lazy_twins) and was not imported yet
_UNLOADED_TWINS: Dict[str, str] = {}


def lazy_module(name: str) -> Callable[[], types.ModuleType]:
    """A loader for :func:`bind_twins`: imports ``name`` when called."""
    return lambda: importlib.import_module(name)


def lazy_attributes(namespace: Dict[str, Any], sources: Mapping[str, str]) -> None:
    """Resolve the names of ``sources`` in a module on first read (PEP 562).

    ``sources`` maps a name to the module that defines it; the module is
    imported on the first read of the name, whose value (the module itself
    when the name is one of the namespace's own submodules) is then cached
    in ``namespace``.  A module ``__getattr__`` defined before is consulted
    for other names.  ``dir()`` of the module lists them all.
    """
    previous = namespace.get("__getattr__")
    table = dict(sources)

    def __getattr__(name: str) -> Any:
        module_name = table.get(name)
        if module_name is None:
            if previous is not None:
                return previous(name)
            raise AttributeError(
                f"module {namespace.get('__name__')!r} has no attribute {name!r}",
            )
        module = importlib.import_module(module_name)
        if name in namespace:
            # a submodule of that name, just bound by the import system
            # (or what public_names_shadow_submodules bound instead)
            value: Any = namespace[name]
        elif module_name == f"{namespace.get('__name__')}.{name}":
            value = module
        else:
            value = getattr(module, name)
        namespace[name] = value
        return value

    previous_dir = namespace.get("__dir__")

    def __dir__() -> List[str]:
        # the names not read yet are listed too, as if imported eagerly
        names = set(previous_dir() if previous_dir is not None else namespace)
        return sorted(names | table.keys())

    namespace["__getattr__"] = __getattr__
    namespace["__dir__"] = __dir__


def public_names_shadow_submodules(package_name: str, names: Iterable[str]) -> None:
    """Keep each of ``names`` bound, in the package, to the object of that
    name in the submodule of that name, also once the submodule is imported.

    The import system binds a newly imported submodule as an attribute of
    its package.  aiomisc imports its ``aggregate`` and ``entrypoint``
    submodules eagerly, before binding the function and the class of those
    names, so ``import aiomisc.entrypoint`` leaves ``aiomisc.entrypoint``
    the class.  A package that imports them on first use gets the same
    result from this: its attribute assignments of those submodules store
    the object of that name instead.
    """
    package = sys.modules[package_name]
    shadowed = {f"{package_name}.{name}": name for name in names}

    class Package(types.ModuleType):
        def __setattr__(self, attribute: str, value: Any) -> None:
            if (
                isinstance(value, types.ModuleType)
                and shadowed.get(value.__name__) == attribute
            ):
                value = getattr(value, attribute)
            super().__setattr__(attribute, value)

    package.__class__ = Package


def import_c_module(name: str) -> Optional[types.ModuleType]:
    """Import ``aiomisc_c.<name>`` unless extensions are switched off.

    Returns ``None`` when C extensions are disabled or the module is not built.
    """
    if not USE_C_EXTENSIONS:
        return None
    try:
        return importlib.import_module(f"aiomisc_c.{name}")
    except ImportError:
        _warn_if_source_checkout()
        return None


_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
_source_checkout_warned = False
# pyproject.toml's pytest settings ignore this message by its start.
SOURCE_CHECKOUT_MESSAGE = (
    "aiomisc_c is imported from a source checkout ({path}) whose C extension "
    "modules are not built, so the slower pure-Python twins are in use. "
    "Build them in place with 'python setup.py build_ext --inplace' (or "
    "'make inplace'), or install the package with 'pip install .'; set "
    "AIOMISC_C_NO_EXTENSIONS=1 to choose the Python twins without this "
    "warning."
)


def _in_source_checkout() -> bool:
    """Whether the package is imported from a clone (``csrc/`` beside it)."""
    return os.path.isdir(os.path.join(os.path.dirname(_PACKAGE_DIR), "csrc"))


def _warn_if_source_checkout() -> None:
    """Warn once when the C modules are missing only because the package is
    imported from a clone (``csrc/`` beside it) where they were not built."""
    global _source_checkout_warned
    if _source_checkout_warned:
        return
    if not _in_source_checkout():
        return
    _source_checkout_warned = True
    warnings.warn(
        SOURCE_CHECKOUT_MESSAGE.format(path=_PACKAGE_DIR), RuntimeWarning,
        stacklevel=3,
    )


def warn_if_unbuilt_checkout(c_modules: Iterable[str]) -> None:
    """Give :func:`import_c_module`'s source-checkout warning now (at the
    package's import) if one of ``c_modules``, imported on first use, is
    not built.  Only their files are looked for (only in a source checkout):
    none is imported."""
    if not USE_C_EXTENSIONS or _source_checkout_warned:
        return
    if not _in_source_checkout():
        return
    from importlib.machinery import EXTENSION_SUFFIXES

    for name in c_modules:
        if not any(
            os.path.exists(os.path.join(_PACKAGE_DIR, name + suffix))
            for suffix in EXTENSION_SUFFIXES
        ):
            import_c_module(name)   # fails, and warns
            return


def _c_module_state(c_module: Any) -> Optional[str]:
    if c_module is not None:
        return None
    if not USE_C_EXTENSIONS:
        return "C extensions are disabled (AIOMISC_C_NO_EXTENSIONS or not CPython)"
    return "the C extension module is not built"


def bind_twins(
    primitive: str,
    namespace: Dict[str, Any],
    python_twins: Any,
    c_module: Any,
    names: List[str],
) -> None:
    """Register the twinned ``names`` that a public module has bound.

    The module binds each name in its source first (the C twin when
    ``c_module`` is not ``None``, else the Python one); this checks that
    binding, keeps both twins reachable as ``_PyNAME`` and ``_CNAME`` (the
    latter is ``None`` without the extension) and records the names for
    :func:`use_implementation`.  ``python_twins`` holds the Python twins (a
    module or namespace), or is a loader that returns it (see
    :func:`lazy_module`), called on first need.
    """
    load = python_twins if callable(python_twins) else (lambda: python_twins)
    pairs = TwinPairs(namespace, load, c_module, names)
    for name in names:
        namespace[f"_C{name}"] = pairs._c[name]
    kind = "c" if c_module is not None else "python"
    chosen = pairs._c if kind == "c" else pairs.python()
    for name, obj in chosen.items():
        if namespace.get(name) is not obj:
            raise RuntimeError(
                f"{namespace.get('__name__')}.{name} must be bound to its "
                f"{kind} twin before bind_twins()",
            )
    _resolve_python_names_lazily(namespace, pairs)
    _TWINS[primitive] = (namespace, pairs)
    _C_MISSING[primitive] = _c_module_state(c_module)
    _CHOSEN[primitive] = kind
    _UNLOADED_TWINS.pop(primitive, None)
    if primitive in _REEXPORTS:
        # re-exported before the module was imported (lazy_twins)
        _select(primitive, kind)


def _resolve_python_names_lazily(
    namespace: Dict[str, Any], pairs: TwinPairs,
) -> None:
    """A module ``__getattr__`` (PEP 562) that imports the Python twins on
    the first read of a ``_PyNAME``, chained to the module's own one."""
    previous = namespace.get("__getattr__")
    python_names = {f"_Py{name}" for name in pairs}

    def __getattr__(name: str) -> Any:
        if name in python_names:
            return pairs.python()[name[3:]]
        if previous is not None:
            return previous(name)
        raise AttributeError(
            f"module {namespace.get('__name__')!r} has no attribute {name!r}",
        )

    namespace["__getattr__"] = __getattr__


def reexport_twins(primitive: str, namespace: Dict[str, Any], names: List[str]) -> None:
    """Keep ``names`` of ``primitive`` in another namespace (e.g. the package's
    top level) bound to the same twin as the public module."""
    _REEXPORTS.setdefault(primitive, []).append((namespace, list(names)))
    _select(primitive, _CHOSEN[primitive])


def lazy_twins(
    primitive: str, module_name: str, namespace: Dict[str, Any], names: List[str],
) -> None:
    """:func:`reexport_twins` for a primitive whose module ``module_name``
    (the one that calls :func:`bind_twins`) is imported on first use.

    The names are bound in ``namespace`` when that module is imported (pair
    this with :func:`lazy_attributes` for the names themselves).  Until
    then, whatever must see every primitive (:data:`implementation`,
    :func:`c_available`, :func:`use_implementation`) imports the module
    first, so it behaves as if the module had been imported eagerly.
    """
    _REEXPORTS.setdefault(primitive, []).append((namespace, list(names)))
    if primitive in _TWINS:
        _select(primitive, _CHOSEN[primitive])
    else:
        _UNLOADED_TWINS[primitive] = module_name


def load_twins(primitive: Optional[str] = None) -> None:
    """Import the module of ``primitive`` (of every primitive registered by
    :func:`lazy_twins`) if it was not imported yet."""
    pending = list(_UNLOADED_TWINS) if primitive is None else [primitive]
    for name in pending:
        module_name = _UNLOADED_TWINS.get(name)
        if module_name is not None:
            importlib.import_module(module_name)


def _select(primitive: str, kind: str) -> None:
    namespace, pairs = _TWINS[primitive]
    chosen = pairs._c if kind == "c" else pairs.python()
    for name, obj in chosen.items():
        namespace[name] = obj
    for other, names in _REEXPORTS.get(primitive, ()):
        for name in names:
            other[name] = namespace[name]
    _CHOSEN[primitive] = kind


def c_available(primitive: Optional[str] = None) -> bool:
    """Whether the C twin of ``primitive`` (of every primitive) is importable."""
    load_twins(primitive)
    if primitive is not None:
        return _C_MISSING.get(primitive) is None
    return bool(_C_MISSING) and all(v is None for v in _C_MISSING.values())


@contextlib.contextmanager
def use_implementation(kind: str) -> Iterator[None]:
    """Temporarily bind every twinned name to ``"c"`` or ``"python"``."""
    if kind not in ("c", "python"):
        raise ValueError(f"kind must be 'c' or 'python', not {kind!r}")
    load_twins()
    if kind == "c" and not c_available():
        missing = {k: v for k, v in _C_MISSING.items() if v}
        raise RuntimeError(f"C twins are unavailable: {missing}")
    previous = dict(_CHOSEN)
    try:
        for primitive in _TWINS:
            _select(primitive, kind)
        yield
    finally:
        for primitive, prev_kind in previous.items():
            _select(primitive, prev_kind)


class Implementation(Mapping[str, str]):
    """Read-only view: primitive name -> ``"c"`` or ``"python"``.

    ``str(aiomisc_c.implementation)`` is ``"c"`` when every primitive runs in
    C, ``"python"`` when none does and ``"mixed"`` otherwise.
    """

    def __getitem__(self, key: str) -> str:
        load_twins(key)
        return _CHOSEN[key]

    def __iter__(self) -> Iterator[str]:
        load_twins()
        return iter(sorted(_CHOSEN))

    def __len__(self) -> int:
        load_twins()
        return len(_CHOSEN)

    @property
    def kind(self) -> str:
        load_twins()
        kinds = set(_CHOSEN.values())
        if kinds == {"c"}:
            return "c"
        if kinds <= {"python"}:
            return "python"
        return "mixed"

    def __str__(self) -> str:
        return self.kind

    def __eq__(self, other: object) -> bool:
        if isinstance(other, str):
            return self.kind == other
        return dict(self) == other

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"<aiomisc_c implementation {self.kind!r} {dict(self)!r}>"


implementation = Implementation()

PY_311 = sys.version_info >= (3, 11)

# Process-directed signals that the package's own threads leave to others.
_THREAD_BLOCKED_SIGNALS = frozenset(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM")
    if hasattr(signal, name)
)


@contextlib.contextmanager
def process_signals_blocked() -> Iterator[None]:
    """Threads started inside this block never receive SIGINT/SIGTERM.

    The kernel hands a process-directed signal to any thread that does not
    block it.  Python handlers run in the main thread only, and a main
    thread asleep in ``epoll_wait`` is not woken when a worker thread took
    the signal: the handler would wait for the next loop wake-up (forever,
    for a loop with nothing scheduled).  New threads inherit the creator's
    mask, so the mask is set around ``Thread.start()``.
    """
    if not hasattr(signal, "pthread_sigmask") or not _THREAD_BLOCKED_SIGNALS:
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, _THREAD_BLOCKED_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
