# Types of the C backoff/retry/timeout module (csrc/backoff.c); the Python
# twin is aiomisc_c/_backoff_py.py, typed the same way (tests/test_stubs.py).
from typing import (
    Any, Callable, Coroutine, Generator, Generic, Optional, ParamSpec, Tuple,
    Type, TypeVar,
)

from ._backoff_base import (
    AsyncBackoffFactory, AsyncRetryFactory, BackoffStatistic as BackoffStatistic,
    Number, RetryStatistic as RetryStatistic, TimeoutDecorator,
)

P = ParamSpec("P")
T = TypeVar("T")

class BackoffExecution(Generic[P, T]):
    attempt_timeout: Optional[Number]
    deadline: Optional[Number]
    pause: Number
    exceptions: Tuple[Type[BaseException], ...]
    max_tries: Optional[int]
    giveup: Optional[Callable[[Exception], bool]]
    function: Callable[P, Coroutine[Any, Any, T]]
    statistic: BackoffStatistic
    last_exception: Optional[BaseException]
    total_tries: int
    def __init__(
        self,
        function: Callable[P, Coroutine[Any, Any, T]],
        statistic: BackoffStatistic,
        attempt_timeout: Optional[Number],
        deadline: Optional[Number],
        pause: Number = 0,
        exceptions: Tuple[Type[Exception], ...] = (),
        max_tries: Optional[int] = None,
        giveup: Optional[Callable[[Exception], bool]] = None,
    ) -> None: ...
    async def __call__(self, *args: P.args, **kwargs: P.kwargs) -> T: ...
    async def execute(self, *args: P.args, **kwargs: P.kwargs) -> T: ...

class Backoff:
    attempt_timeout: Optional[Number]
    deadline: Optional[Number]
    pause: Number
    exceptions: Tuple[Type[BaseException], ...]
    max_tries: Optional[int]
    giveup: Optional[Callable[[Exception], bool]]
    statistic: BackoffStatistic
    def __init__(
        self,
        attempt_timeout: Optional[Number],
        deadline: Optional[Number],
        pause: Number = 0,
        exceptions: Tuple[Type[Exception], ...] = (),
        max_tries: Optional[int] = None,
        giveup: Optional[Callable[[Exception], bool]] = None,
        statistic_name: Optional[str] = None,
        statistic_class: Type[BackoffStatistic] = ...,
    ) -> None: ...
    def prepare(
        self, func: Callable[P, Coroutine[Any, Any, T]],
    ) -> BackoffExecution[P, T]: ...
    async def execute(
        self,
        func: Callable[P, Coroutine[Any, Any, T]],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T: ...
    def __call__(
        self, func: Callable[P, Coroutine[Any, Any, T]],
    ) -> Callable[P, Coroutine[Any, Any, T]]: ...

# What Backoff and timeout return in C: callables that keep the wrapped
# coroutine function's signature (typed as such above) and the coroutine
# object their calls return.
class BackoffFunction:
    @property
    def backoff(self) -> Backoff: ...
    def __call__(self, *args: Any, **kwargs: Any) -> Call: ...

class TimeoutFunction:
    @property
    def timeout(self) -> Optional[Number]: ...
    def __call__(self, *args: Any, **kwargs: Any) -> Call: ...

class Call:
    @property
    def cr_running(self) -> bool: ...
    @property
    def cr_await(self) -> Any: ...
    def __await__(self) -> Generator[Any, None, Any]: ...
    def __iter__(self) -> Call: ...
    def __next__(self) -> Any: ...
    def send(self, value: Any, /) -> Any: ...
    def throw(self, typ: Any, val: Any = ..., tb: Any = ..., /) -> Any: ...
    def close(self) -> None: ...

asyncbackoff: AsyncBackoffFactory[Backoff]
asyncretry: AsyncRetryFactory[Backoff]
def timeout(value: Optional[Number]) -> TimeoutDecorator: ...
