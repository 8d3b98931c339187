"""Async callback registry (mirror of ``aiomisc.signal``)."""
from __future__ import annotations

from typing import Any, Callable, FrozenSet, Set, TypeVar, Union

from ._backoff_base import iscoroutinefunction

__all__ = ("ReceiverType", "Signal", "receiver")

T = TypeVar("T")
ReceiverType = Callable[..., Any]


class Signal:
    """A set of coroutine functions awaited one after another by :meth:`call`.

    Receivers are kept in a set: no duplicates, no guaranteed order.  After
    :meth:`freeze` the set can no longer change; :meth:`copy` gives an
    unfrozen signal with the same receivers.
    """

    __slots__ = ("_receivers",)

    def __init__(self) -> None:
        self._receivers: Union[Set[ReceiverType], FrozenSet[ReceiverType]] = set()

    def _check_not_frozen(self, receiver: ReceiverType) -> None:
        if self.is_frozen:
            # Two exception arguments, unformatted, as aiomisc 17.x raises.
            raise RuntimeError(
                "Can't connect receiver (%r) to the frozen signal", receiver,
            )

    def connect(self, receiver: ReceiverType) -> None:
        self._check_not_frozen(receiver)
        if not iscoroutinefunction(receiver):
            raise RuntimeError("%r is not a coroutine function", receiver)
        self._receivers.add(receiver)  # type: ignore[union-attr]

    def disconnect(self, receiver: ReceiverType) -> None:
        self._check_not_frozen(receiver)
        self._receivers.discard(receiver)  # type: ignore[union-attr]

    async def call(self, *args: Any, **kwargs: Any) -> None:
        # A snapshot: a receiver may connect or disconnect others meanwhile.
        for receiver in tuple(self._receivers):
            await receiver(*args, **kwargs)

    def copy(self) -> "Signal":
        clone = type(self)()
        clone._receivers = set(self._receivers)
        return clone

    @property
    def is_frozen(self) -> bool:
        return isinstance(self._receivers, frozenset)

    def freeze(self) -> None:
        self._receivers = frozenset(self._receivers)

    def __repr__(self) -> str:
        state = " frozen" if self.is_frozen else ""
        return f"<{type(self).__name__}{state} receivers={len(self._receivers)}>"


def receiver(s: Signal) -> Callable[[T], T]:
    """Decorator: connect the coroutine function to ``s``; return it as is."""
    if not isinstance(s, Signal):
        raise TypeError(
            f"receiver(): 's' must be a Signal, not {type(s).__name__}",
        )

    def decorator(func: T) -> T:
        s.connect(func)  # type: ignore[arg-type]
        return func

    return decorator
