"""A least-recently-used cache of image embeddings with a byte budget."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any, Generic, Protocol, TypeVar


class Sized(Protocol):
    @property
    def nbytes(self) -> int: ...


V = TypeVar("V", bound=Sized)


class ByteBudgetLRU(Generic[V]):
    """Keeps the most recently used values while their total ``nbytes`` fits ``budget``.

    The most recent entry is always kept, even if it alone exceeds the budget.
    ``on_evict(key, value)`` is called for every entry pushed out by the budget
    (e.g. to move it to disk).
    """

    def __init__(self, budget: int, on_evict: Callable[[Any, V], None] | None = None) -> None:
        self.budget = int(budget)
        self.on_evict = on_evict
        self._items: OrderedDict[Hashable, V] = OrderedDict()
        self._bytes = 0
        self.hits = 0
        self.misses = 0

    def get(self, key: Hashable) -> V | None:
        value = self._items.get(key)
        if value is None:
            self.misses += 1
            return None
        self.hits += 1
        self._items.move_to_end(key)
        return value

    def put(self, key: Hashable, value: V) -> None:
        old = self._items.pop(key, None)
        if old is not None:
            self._bytes -= old.nbytes
        self._items[key] = value
        self._bytes += value.nbytes
        while self._bytes > self.budget and len(self._items) > 1:
            dropped_key, dropped = self._items.popitem(last=False)
            self._bytes -= dropped.nbytes
            if self.on_evict is not None:
                self.on_evict(dropped_key, dropped)

    def clear(self) -> None:
        self._items.clear()
        self._bytes = 0

    @property
    def nbytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._items
