# Types of the C circuit breaker (csrc/circuit_breaker.c); the Python twin is
# aiomisc_c/_circuit_breaker_py.py, typed the same way (tests/test_stubs.py).
import asyncio
from collections import Counter
from contextlib import AbstractContextManager
from typing import (
    Any, Awaitable, Callable, ClassVar, Iterable, Optional, ParamSpec, TypeVar,
)

from ._circuit_breaker_base import (
    CircuitBreakerStates, CutoutFactory, ExceptionInspectorType, Number,
)

P = ParamSpec("P")
T = TypeVar("T")

class CircuitBreaker:
    BUCKET_COUNT: ClassVar[int]
    RECOVER_BROKEN_THRESHOLD: ClassVar[float]
    PASSING_BROKEN_THRESHOLD: ClassVar[int]
    def __init__(
        self,
        error_ratio: float,
        response_time: Number,
        exceptions: Iterable[type[Exception]] = ...,
        recovery_time: Optional[Number] = None,
        broken_time: Optional[Number] = None,
        passing_time: Optional[Number] = None,
        exception_inspector: ExceptionInspectorType = None,
        statistic_name: Optional[str] = None,
    ) -> None: ...
    @property
    def loop(self) -> asyncio.AbstractEventLoop: ...
    @property
    def response_time(self) -> Number: ...
    @property
    def state(self) -> CircuitBreakerStates: ...
    @property
    def recovery_ratio(self) -> Number: ...
    def _get_time(self) -> float: ...
    def bucket(self) -> int: ...
    def counter(self) -> Counter[Any]: ...
    def get_state_delay(self) -> Number: ...
    def context(self) -> AbstractContextManager[None]: ...
    def call(
        self, func: Callable[P, T], *args: P.args, **kwargs: P.kwargs,
    ) -> T: ...
    async def call_async(
        self, func: Callable[P, Awaitable[T]], *args: P.args,
        **kwargs: P.kwargs,
    ) -> T: ...

cutout: CutoutFactory
