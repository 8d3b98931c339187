"""Statistic counters.

A counter is a class annotation of type ``int`` or ``float`` on a
:class:`Statistic` subclass.  Each instance stores its counters in two flat
``array.array`` buffers (``"q"`` for ints, ``"d"`` for floats).  Reading a
counter returns a plain number; ``+=``, ``-=`` and assignment all write the
buffer, so :func:`get_statistics` always sees the current value.

The buffers are also the contract with C code: a C primitive asks
:meth:`Statistic._counter_slot` for ``(buffer, index)`` once, keeps the buffer
exported (which pins its memory) and increments the slot natively with the
GIL held — no dictionary operation per call.
"""
from array import array
from typing import Any, Dict, Iterator, MutableSet, Optional, Tuple, Type, Union
from weakref import WeakSet

__all__ = (
    "AbstractStatistic",
    "CLASS_STORE",
    "MetaStatistic",
    "Metric",
    "Statistic",
    "StatisticResult",
    "get_statistics",
)

Number = Union[int, float]


class Metric:
    """Data descriptor for one counter: slot ``index`` of the instance's
    ``_ints`` (``kind is int``) or ``_floats`` (``kind is float``) buffer."""

    __slots__ = ("name", "kind", "index", "_buffer")

    def __init__(self, name: str, kind: type, index: int):
        self.name = name
        self.kind = kind
        self.index = index
        self._buffer = "_ints" if kind is int else "_floats"

    def __get__(self, instance: Any, owner: Any = None) -> Any:
        if instance is None:
            return self
        return getattr(instance, self._buffer)[self.index]

    def __set__(self, instance: Any, value: Number) -> None:
        getattr(instance, self._buffer)[self.index] = self.kind(value)

    def __repr__(self) -> str:
        return f"<Metric {self.name}: {self.kind.__name__}>"


class AbstractStatistic:
    __metrics__: frozenset[str]
    __instances__: MutableSet["AbstractStatistic"]
    name: Optional[str]


CLASS_STORE: "set[Any]" = set()


def _own_counters(klass: type) -> Dict[str, type]:
    annotations = klass.__dict__.get("__annotations__", {})
    return {
        name: kind for name, kind in annotations.items()
        if kind is int or kind is float
    }


class MetaStatistic(type):
    """Collects counter annotations (own and inherited) into ``__metrics__``
    and lays out the per-instance buffers."""

    def __new__(mcs, name: str, bases: Tuple[type, ...], dct: Dict[str, Any]) -> Any:
        klass: Any = super().__new__(mcs, name, bases, dct)

        counters: Dict[str, type] = {}
        # Inherit every statistic ancestor's counters (17.x reads only the
        # direct bases; inheriting the full set is the documented choice).
        for ancestor in reversed(klass.__mro__[1:]):
            if isinstance(ancestor, MetaStatistic):
                for prop, kind in _own_counters(ancestor).items():
                    if not prop.startswith("_"):
                        counters[prop] = kind
        counters.update(_own_counters(klass))

        int_names = sorted(n for n, k in counters.items() if k is int)
        float_names = sorted(n for n, k in counters.items() if k is float)
        klass.__metrics__ = frozenset(counters)
        klass.__int_metrics__ = tuple(int_names)
        klass.__float_metrics__ = tuple(float_names)
        for index, prop in enumerate(int_names):
            setattr(klass, prop, Metric(prop, int, index))
        for index, prop in enumerate(float_names):
            setattr(klass, prop, Metric(prop, float, index))

        if klass.__metrics__:
            klass.__instances__ = WeakSet()
            CLASS_STORE.add(klass)
        return klass


class Statistic(AbstractStatistic, metaclass=MetaStatistic):

    def __init__(self, name: Optional[str] = None) -> None:
        klass: Any = type(self)
        if not klass.__metrics__:
            raise TypeError(
                f"{klass.__name__} declares no counters; annotate counters "
                "with int or float on a Statistic subclass",
            )
        self._ints = array("q", bytes(8 * len(klass.__int_metrics__)))
        self._floats = array("d", bytes(8 * len(klass.__float_metrics__)))
        self.name = name
        klass.__instances__.add(self)

    def _counter_slot(self, metric: str) -> "Tuple[array[Any], int]":
        """The ``(buffer, index)`` that holds ``metric`` (for C code)."""
        descriptor = type(self).__dict__.get(metric)
        if descriptor is None:
            for klass in type(self).__mro__:
                descriptor = klass.__dict__.get(metric)
                if descriptor is not None:
                    break
        if not isinstance(descriptor, Metric) or metric not in self.__metrics__:
            raise KeyError(f"{type(self).__name__} has no counter {metric!r}")
        return getattr(self, descriptor._buffer), descriptor.index

    def __iter__(self) -> Iterator[Tuple[str, Number]]:
        klass: Any = type(self)
        yield from zip(klass.__int_metrics__, self._ints)
        yield from zip(klass.__float_metrics__, self._floats)

    def __repr__(self) -> str:
        values = ", ".join(f"{k}={v!r}" for k, v in self)
        return f"<{type(self).__name__} {self.name!r}: {values}>"


def _make_statistic_result() -> type:
    # A frozen dataclass, as in aiomisc; made on first use, because creating
    # it (and importing dataclasses) costs ~3 ms of the package's import.
    from dataclasses import dataclass
    
    @dataclass(frozen=True)
    class StatisticResult:
        kind: Type[AbstractStatistic]
        name: Optional[str]
        metric: str
        value: Number

        def __iter__(self) -> Iterator[Any]:
            yield self.kind
            yield self.name
            yield self.metric
            yield self.value

    StatisticResult.__module__ = __name__
    return StatisticResult


def _statistic_result_class() -> type:
    namespace = globals()
    if "StatisticResult" not in namespace:
        namespace["StatisticResult"] = _make_statistic_result()
    result: type = namespace["StatisticResult"]
    return result


def __getattr__(name: str) -> Any:
    if name == "StatisticResult":
        return _statistic_result_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def get_statistics(*kind: Type[Statistic]) -> Iterator[Any]:
    """One :class:`StatisticResult` per counter per live instance of every
    registered statistic class (only subclasses of ``kind`` when given)."""
    result_class = _statistic_result_class()
    for klass in list(CLASS_STORE):
        if kind and not issubclass(klass, kind):
            continue
        for instance in list(klass.__instances__):
            if type(instance) is not klass:
                continue   # reported once, by its own class
            for metric, value in instance:
                yield result_class(
                    kind=klass, name=instance.name, metric=metric, value=value,
                )
