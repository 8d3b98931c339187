# Types of the C event-loop setup (csrc/loop.c); the Python twin is
# aiomisc_c/_loop_py.py, typed the same way (tests/test_stubs.py).
import asyncio

from ._thread_pool_base import ThreadPoolExecutorBase

def create_default_event_loop(
    pool_size: int | None = None,
    policy: asyncio.AbstractEventLoopPolicy = ...,
    debug: bool = False,
) -> tuple[asyncio.AbstractEventLoop, ThreadPoolExecutorBase]: ...
def new_event_loop(
    pool_size: int | None = None,
    policy: asyncio.AbstractEventLoopPolicy = ...,
) -> asyncio.AbstractEventLoop: ...
