"""aiomisc_c: a C-accelerated, drop-in implementation of the aiomisc 17.x API.

``import aiomisc_c as aiomisc`` and code written for aiomisc 17.x runs
unchanged.  ``aiomisc_c.implementation`` tells which primitives run in C.

PYTEST_DONT_REWRITE (the package registers a pytest plugin; this marker lets
pytest start quietly when aiomisc_c was imported first, e.g. by
``python -m aiomisc_c.alias -m pytest``).
"""
from typing import TYPE_CHECKING

from . import _compat, _context_vars, version
from ._compat import implementation
from ._context_vars import StrictContextVar
from .version import __version__, version_info

if TYPE_CHECKING:  # imported on first use at run time (see below)
    from . import (
        backoff, circuit_breaker, compat, context, counters, log, service,
        signal, thread_pool, utils,
    )
    from .aggregate import aggregate, aggregate_async
    from .backoff import Backoff, BackoffExecution, asyncbackoff, asyncretry
    from .circuit_breaker import CircuitBreaker, CircuitBroken, cutout
    from .context import Context, get_context
    from .counters import Statistic, get_statistics
    from .entrypoint import CURRENT_ENTRYPOINT, Entrypoint, entrypoint, run
    from .service import Service
    from .signal import Signal, receiver
    from .thread_pool import (
        ThreadPoolExecutor, context_partial, sync_await,
        sync_wait_coroutine, threaded, threaded_iterable,
        threaded_iterable_separate, threaded_separate, wait_coroutine,
    )
    from .timeout import timeout
    from .utils import (
        SelectResult, awaitable, bind_socket, cancel_tasks, chunk_list,
        new_event_loop, select, shield,
    )

__all__ = (
    "Backoff",
    "BackoffExecution",
    "CURRENT_ENTRYPOINT",
    "CircuitBreaker",
    "CircuitBroken",
    "Context",
    "Entrypoint",
    "IteratorWrapper",
    "IteratorWrapperSeparate",
    "PeriodicCallback",
    "PoolBase",
    "ProcessPoolExecutor",
    "RecurringCallback",
    "SelectResult",
    "Service",
    "Signal",
    "Statistic",
    "StrategyException",
    "StrategySkip",
    "StrategyStop",
    "StrictContextVar",
    "ThreadPoolExecutor",
    "WorkerPool",
    "__version__",
    "aggregate",
    "aggregate_async",
    "asyncbackoff",
    "asyncretry",
    "awaitable",
    "bind_socket",
    "cancel_tasks",
    "chunk_list",
    "context_partial",
    "cutout",
    "entrypoint",
    "get_context",
    "get_statistics",
    "implementation",
    "io",
    "log",
    "new_event_loop",
    "plugins",
    "receiver",
    "run",
    "select",
    "shield",
    "sync_await",
    "sync_wait_coroutine",
    "threaded",
    "threaded_iterable",
    "threaded_iterable_separate",
    "threaded_separate",
    "timeout",
    "version_info",
    "wait_coroutine",
)


# The iterator wrappers are imported on first use: most programs never
# iterate a threaded generator.
_compat.lazy_attributes(globals(), {
    "IteratorWrapper": "aiomisc_c.iterator_wrapper",
    "IteratorWrapperSeparate": "aiomisc_c.iterator_wrapper",
    "iterator_wrapper": "aiomisc_c.iterator_wrapper",
    # Files and processes: loaded by their first user.
    "io": "aiomisc_c.io",
    "ProcessPoolExecutor": "aiomisc_c.process_pool",
    "process_pool": "aiomisc_c.process_pool",
    "WorkerPool": "aiomisc_c.worker_pool",
    "worker_pool": "aiomisc_c.worker_pool",
})

# Scheduling and pooling load on first use too.  CronCallback is offered
# here (not in __all__, as in aiomisc) without importing croniter before it
# is read.
_compat.lazy_attributes(globals(), {
    "PeriodicCallback": "aiomisc_c.periodic",
    "periodic": "aiomisc_c.periodic",
    "PoolBase": "aiomisc_c.pool",
    "pool": "aiomisc_c.pool",
    "RecurringCallback": "aiomisc_c.recurring",
    "StrategyException": "aiomisc_c.recurring",
    "StrategySkip": "aiomisc_c.recurring",
    "StrategyStop": "aiomisc_c.recurring",
    "recurring": "aiomisc_c.recurring",
    "CronCallback": "aiomisc_c.cron",
})

# The entrypoint, logging, services, signals and the aggregators are loaded by
# their first user too: a cold "import aiomisc_c" stays about twice as fast as
# aiomisc's (benchmarks/bench_entrypoint.py measures it).
_compat.lazy_attributes(globals(), {
    "aggregate": "aiomisc_c.aggregate",
    "aggregate_async": "aiomisc_c.aggregate",
    "CURRENT_ENTRYPOINT": "aiomisc_c.entrypoint",
    "Entrypoint": "aiomisc_c.entrypoint",
    "entrypoint": "aiomisc_c.entrypoint",
    "run": "aiomisc_c.entrypoint",
    "context": "aiomisc_c.context",
    "Context": "aiomisc_c.context",
    "get_context": "aiomisc_c.context",
    "log": "aiomisc_c.log",
    "service": "aiomisc_c.service",
    "Service": "aiomisc_c.service",
    "signal": "aiomisc_c.signal",
    "Signal": "aiomisc_c.signal",
    "receiver": "aiomisc_c.signal",
})
# As in aiomisc, "aiomisc_c.aggregate", "aiomisc_c.entrypoint" and
# "aiomisc_c.timeout" are the functions and the class even after their
# submodules are imported.
_compat.public_names_shadow_submodules(
    __name__, ("aggregate", "entrypoint", "timeout"),
)

# The primitives (thread pool, backoff, circuit breaker, timeout, the loop
# helpers), the counters and the compatibility helpers load on first use
# too: together they were most of the package's own import time.
_compat.lazy_attributes(globals(), {
    "backoff": "aiomisc_c.backoff",
    "Backoff": "aiomisc_c.backoff",
    "BackoffExecution": "aiomisc_c.backoff",
    "asyncbackoff": "aiomisc_c.backoff",
    "asyncretry": "aiomisc_c.backoff",
    "circuit_breaker": "aiomisc_c.circuit_breaker",
    "CircuitBreaker": "aiomisc_c.circuit_breaker",
    "CircuitBroken": "aiomisc_c.circuit_breaker",
    "cutout": "aiomisc_c.circuit_breaker",
    "compat": "aiomisc_c.compat",
    "counters": "aiomisc_c.counters",
    "Statistic": "aiomisc_c.counters",
    "get_statistics": "aiomisc_c.counters",
    "thread_pool": "aiomisc_c.thread_pool",
    "ThreadPoolExecutor": "aiomisc_c.thread_pool",
    "context_partial": "aiomisc_c.thread_pool",
    "sync_await": "aiomisc_c.thread_pool",
    "sync_wait_coroutine": "aiomisc_c.thread_pool",
    "threaded": "aiomisc_c.thread_pool",
    "threaded_iterable": "aiomisc_c.thread_pool",
    "threaded_iterable_separate": "aiomisc_c.thread_pool",
    "threaded_separate": "aiomisc_c.thread_pool",
    "wait_coroutine": "aiomisc_c.thread_pool",
    "timeout": "aiomisc_c.timeout",
    "utils": "aiomisc_c.utils",
    "SelectResult": "aiomisc_c.utils",
    "awaitable": "aiomisc_c.utils",
    "bind_socket": "aiomisc_c.utils",
    "cancel_tasks": "aiomisc_c.utils",
    "chunk_list": "aiomisc_c.utils",
    "new_event_loop": "aiomisc_c.utils",
    "select": "aiomisc_c.utils",
    "shield": "aiomisc_c.utils",
})

# Twinned names re-exported here follow aiomisc_c._compat.use_implementation
# (bound when their module is imported).
_compat.lazy_twins(
    "thread_pool", "aiomisc_c.thread_pool", globals(), ["ThreadPoolExecutor"],
)
_compat.lazy_twins("loop", "aiomisc_c.utils", globals(), ["new_event_loop"])
_compat.lazy_twins(
    "backoff", "aiomisc_c.backoff", globals(),
    ["Backoff", "BackoffExecution", "asyncbackoff", "asyncretry"],
)
_compat.lazy_twins(
    "circuit_breaker", "aiomisc_c.circuit_breaker", globals(),
    ["CircuitBreaker", "cutout"],
)
_compat.lazy_twins("timeout", "aiomisc_c.timeout", globals(), ["timeout"])
# From a source checkout whose C modules are not built, "import aiomisc_c"
# warns at once, as when these modules were imported eagerly.
_compat.warn_if_unbuilt_checkout(
    ["_thread_pool", "_loop", "_backoff", "_circuit_breaker"],
)

# Last, as in aiomisc: plugins may import any top-level name, and the
# package attribute "plugins" becomes the mapping of loaded plugins.
from .plugins import plugins  # noqa: E402
