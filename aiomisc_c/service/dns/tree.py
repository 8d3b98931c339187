"""A radix tree keyed by tuples of labels: the zone index of ``DNSStore``
(mirror of ``aiomisc.service.dns.tree``)."""
from __future__ import annotations

from collections.abc import Hashable
from typing import Any, Dict, Generic, Optional, Tuple, TypeVar

K = Tuple[str, ...]
T = TypeVar("T", bound=Any)

__all__ = ("K", "RadixNode", "RadixTree")


class RadixNode(Generic[T]):
    """One label of a key: its children by label and an optional value."""

    __slots__ = ("children", "value")

    def __init__(self) -> None:
        self.children: Dict[Hashable, RadixNode[T]] = {}
        self.value: Optional[T] = None


class RadixTree(Generic[T]):
    """Maps label tuples to values; ``find_prefix`` finds the value of the
    longest stored prefix of a key (the zone a name belongs to)."""

    __slots__ = ("root",)

    root: RadixNode[T]

    def __init__(self) -> None:
        self.root = RadixNode()

    def insert(self, key: K, value: Optional[T]) -> None:
        node = self.root
        for part in key:
            child = node.children.get(part)
            if child is None:
                child = node.children[part] = RadixNode()
            node = child
        node.value = value

    def search(self, key: K) -> Optional[T]:
        node: Optional[RadixNode[T]] = self.root
        for part in key:
            node = node.children.get(part)  # type: ignore[union-attr]
            if node is None:
                return None
        return node.value  # type: ignore[union-attr]

    def find_prefix(self, key: K) -> Optional[Tuple[K, T]]:
        """The deepest non-``None`` value along ``key`` with its own key
        prefix (the root's value counts, with prefix ``()``), or ``None``."""
        node = self.root
        value = node.value
        depth = 0
        for index, part in enumerate(key, 1):
            child = node.children.get(part)
            if child is None:
                break
            node = child
            if node.value is not None:
                value = node.value
                depth = index
        if value is None:
            return None
        return tuple(key[:depth]), value
