"""The ``.pyi`` stubs of the C extension modules stay in step with the
Python twins (which type checkers and readers take as the reference) and
with the C modules themselves.

Each stub is parsed with ``ast``; every name it shares with the Python twin
must have the same parameters (names, kinds, which have defaults) as the
twin's ``inspect.signature``, every public method of a twin class must be
declared, and the stub must declare exactly the public names the built C
module has.
"""
import ast
import importlib
import inspect
from pathlib import Path

import pytest

import aiomisc_c
from aiomisc_c import _compat

PACKAGE_DIR = Path(aiomisc_c.__file__).parent

# C module -> (Python twin module, names both twins have)
TWINS = {
    "_thread_pool": ("_thread_pool_py", ("Executor", "Threaded", "BoundThreaded")),
    "_circuit_breaker": ("_circuit_breaker_py", ("CircuitBreaker", "cutout")),
    "_backoff": ("_backoff_py", (
        "Backoff", "BackoffExecution", "BackoffStatistic", "RetryStatistic",
        "asyncbackoff", "asyncretry", "timeout",
    )),
    "_loop": ("_loop_py", ("create_default_event_loop", "new_event_loop")),
    "_pool": ("_pool_py", ("Acquisition",)),
}
# C module -> primitive name in aiomisc_c._compat
PRIMITIVE = {
    "_thread_pool": "thread_pool", "_circuit_breaker": "circuit_breaker",
    "_backoff": "backoff", "_loop": "loop", "_pool": "pool",
}

KINDS = {
    "posonlyargs": inspect.Parameter.POSITIONAL_ONLY,
    "args": inspect.Parameter.POSITIONAL_OR_KEYWORD,
    "kwonlyargs": inspect.Parameter.KEYWORD_ONLY,
}


def parse_stub(module):
    path = PACKAGE_DIR / f"{module}.pyi"
    return ast.parse(path.read_text(), filename=str(path))


def stub_parameters(func):
    """[(name, kind, has_default)] of a stub's ``def``."""
    arguments = func.args
    params = []
    positional = arguments.posonlyargs + arguments.args
    first_default = len(positional) - len(arguments.defaults)
    for index, arg in enumerate(positional):
        kind = KINDS["posonlyargs" if arg in arguments.posonlyargs else "args"]
        params.append((arg.arg, kind, index >= first_default))
    if arguments.vararg is not None:
        params.append(
            (arguments.vararg.arg, inspect.Parameter.VAR_POSITIONAL, False),
        )
    for arg, default in zip(arguments.kwonlyargs, arguments.kw_defaults):
        params.append((arg.arg, KINDS["kwonlyargs"], default is not None))
    if arguments.kwarg is not None:
        params.append((arguments.kwarg.arg, inspect.Parameter.VAR_KEYWORD, False))
    return params


def runtime_parameters(obj, drop_first=False):
    params = [
        (p.name, p.kind, p.default is not inspect.Parameter.empty)
        for p in inspect.signature(obj).parameters.values()
    ]
    return params[1:] if drop_first else params


def stub_imports(tree):
    """Name -> object for the stub's ``from X import Y`` of package modules."""
    names = {}
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            module = importlib.import_module(f"aiomisc_c.{node.module}")
            for alias in node.names:
                found = getattr(module, alias.name, None)
                if found is None:
                    found = type_checking_class(module, alias.name)
                names[alias.asname or alias.name] = found
    return names


def type_checking_class(module, name):
    """The ``class name`` a module defines for type checkers only (under
    ``if TYPE_CHECKING:``), as its AST node."""
    tree = ast.parse(inspect.getsource(module))
    for node in tree.body:
        if (
            isinstance(node, ast.If)
            and ast.unparse(node.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING")
        ):
            for item in node.body:
                if isinstance(item, ast.ClassDef) and item.name == name:
                    return item
    raise AssertionError(f"{module.__name__} has no {name}")


def top_level(tree):
    """Public name -> list of stub nodes (several for overloads)."""
    found = {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            name = node.name
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            name = node.target.id
        elif isinstance(node, ast.ImportFrom):
            # "import X as X": an explicit re-export
            for alias in node.names:
                if alias.asname == alias.name:
                    found.setdefault(alias.name, []).append(node)
            continue
        else:
            continue
        if not name.startswith("_"):
            found.setdefault(name, []).append(node)
    return found


def class_members(node):
    members = {}
    for item in node.body:
        if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
            members.setdefault(item.name, []).append(item)
        elif isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
            members.setdefault(item.target.id, []).append(item)
    return members


def is_property(func):
    return any(
        isinstance(d, ast.Name) and d.id == "property" for d in func.decorator_list
    )


def check_function(stub_nodes, twin_obj, where):
    for func in stub_nodes:
        assert stub_parameters(func) == runtime_parameters(twin_obj), where


def check_class(stub_node, twin_class, where):
    members = class_members(stub_node)
    for name, nodes in members.items():
        assert hasattr(twin_class, name), f"{where}.{name}: not in the twin"
        funcs = [n for n in nodes if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
        if not funcs or is_property(funcs[0]):
            continue
        twin_member = inspect.getattr_static(twin_class, name)
        if isinstance(twin_member, property):
            pytest.fail(f"{where}.{name}: a property in the twin, a method in the stub")
        check_function(funcs, getattr(twin_class, name), f"{where}.{name}")
    # Every public method (and protocol method) the twin defines is declared.
    for klass in twin_class.__mro__:
        if klass.__module__ != twin_class.__module__:
            continue
        for name, value in vars(klass).items():
            wanted = not name.startswith("_") or name in (
                "__init__", "__call__", "__get__",
            )
            if wanted and (callable(value) or isinstance(value, property)):
                assert name in members, f"{where}.{name}: missing in the stub"


@pytest.mark.parametrize("c_module", sorted(TWINS))
def test_stub_matches_python_twin(c_module):
    twin_name, shared = TWINS[c_module]
    twin = importlib.import_module(f"aiomisc_c.{twin_name}")
    tree = parse_stub(c_module)
    imports = stub_imports(tree)
    names = top_level(tree)
    assert set(shared) <= set(names), set(shared) - set(names)
    for name in shared:
        twin_obj = getattr(twin, name)
        for node in names[name]:
            where = f"{c_module}.{name}"
            if isinstance(node, ast.ClassDef):
                check_class(node, twin_obj, where)
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                check_function([node], twin_obj, where)
            elif isinstance(node, ast.ImportFrom):
                assert imports[name] is twin_obj, where
            else:   # "name: SomeProtocol": the Protocol's __call__
                protocol = imports[ast.unparse(node.annotation).split("[")[0]]
                if isinstance(protocol, ast.ClassDef):
                    (call,) = class_members(protocol)["__call__"]
                    declared = stub_parameters(call)[1:]
                else:
                    declared = runtime_parameters(
                        protocol.__call__, drop_first=True,
                    )
                assert declared == runtime_parameters(twin_obj), where


@pytest.mark.parametrize("c_module", sorted(TWINS))
def test_stub_declares_what_the_c_module_has(c_module):
    if not _compat.c_available(PRIMITIVE[c_module]):
        pytest.skip(f"aiomisc_c.{c_module} is not built")
    module = importlib.import_module(f"aiomisc_c.{c_module}")
    public = {name for name in dir(module) if not name.startswith("_")}
    assert set(top_level(parse_stub(c_module))) == public


def test_every_c_module_has_a_stub():
    sources = {
        path.name.split(".")[0] for path in PACKAGE_DIR.glob("_*.so")
    } | {path.name.split(".")[0] for path in PACKAGE_DIR.glob("_*.pyd")}
    stubs = {path.stem for path in PACKAGE_DIR.glob("_*.pyi")}
    assert sources <= stubs
    assert set(TWINS) == stubs


def test_a_changed_twin_is_caught():
    """The comparison fails when a parameter differs (the check is live)."""
    tree = ast.parse("def f(a, /, b=1, *c, d, **e): ...")
    func = tree.body[0]

    def same(a, /, b=1, *c, d, **e): ...

    def renamed(a, /, b=1, *c, x, **e): ...

    def no_default(a, /, b, *c, d, **e): ...

    assert stub_parameters(func) == runtime_parameters(same)
    assert stub_parameters(func) != runtime_parameters(renamed)
    assert stub_parameters(func) != runtime_parameters(no_default)


def test_generic_classes_are_subscriptable_at_run_time(implementation):
    """Annotations such as ``Threaded[[int], str]`` also work where they are
    evaluated (no ``from __future__ import annotations``), on both twins."""
    from aiomisc_c import backoff, iterator_wrapper, thread_pool

    for generic in (
        thread_pool.Threaded, thread_pool.BoundThreaded,
        thread_pool.ThreadedSeparate, thread_pool.ThreadedIterable,
        thread_pool.BoundThreadedIterable, thread_pool.ThreadedIterableSeparate,
        iterator_wrapper.IteratorWrapper, backoff.BackoffExecution,
    ):
        alias = generic[[int], str]
        assert alias.__origin__ is generic
