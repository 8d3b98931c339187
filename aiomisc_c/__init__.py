"""aiomisc_c: a C-accelerated, drop-in implementation of the aiomisc 17.x API.

``import aiomisc_c as aiomisc`` and code written for aiomisc 17.x runs
unchanged.  ``aiomisc_c.implementation`` tells which primitives run in C.

PYTEST_DONT_REWRITE (the package registers a pytest plugin; this marker lets
pytest start quietly when aiomisc_c was imported first, e.g. by
``python -m aiomisc_c.alias -m pytest``).
"""
from typing import TYPE_CHECKING

from . import (
    backoff, circuit_breaker, compat, counters, thread_pool, utils, version,
)
from . import _compat, _context_vars
from .backoff import Backoff, BackoffExecution, asyncbackoff, asyncretry
from .circuit_breaker import CircuitBreaker, CircuitBroken, cutout
from ._compat import implementation
from ._context_vars import StrictContextVar
from .counters import Statistic, get_statistics
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
from .version import __version__, version_info

if TYPE_CHECKING:  # imported on first use at run time (see below)
    from . import context, log, service, signal
    from .aggregate import aggregate, aggregate_async
    from .context import Context, get_context
    from .entrypoint import CURRENT_ENTRYPOINT, Entrypoint, entrypoint, run
    from .service import Service
    from .signal import Signal, receiver

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
# As in aiomisc, "aiomisc_c.aggregate" and "aiomisc_c.entrypoint" are the
# function and the class even after their submodules are imported.
_compat.public_names_shadow_submodules(__name__, ("aggregate", "entrypoint"))

# Twinned names re-exported here follow aiomisc_c._compat.use_implementation.
_compat.reexport_twins("thread_pool", globals(), ["ThreadPoolExecutor"])
_compat.reexport_twins("loop", globals(), ["new_event_loop"])
_compat.reexport_twins(
    "backoff", globals(),
    ["Backoff", "BackoffExecution", "asyncbackoff", "asyncretry"],
)
_compat.reexport_twins("circuit_breaker", globals(), ["CircuitBreaker", "cutout"])
_compat.reexport_twins("timeout", globals(), ["timeout"])

# Last, as in aiomisc: plugins may import any top-level name, and the
# package attribute "plugins" becomes the mapping of loaded plugins.
from .plugins import plugins  # noqa: E402
