"""An entrypoint for in-process tests: it leaves logging and OS signals
alone, and the loop state it sets is reset after every test."""
import asyncio

import pytest

from aiomisc_c.entrypoint import entrypoint


@pytest.fixture(autouse=True)
def reset_loop_state():
    """Autouse in every test module that imports it."""
    yield
    asyncio.set_event_loop(None)
    asyncio.set_event_loop_policy(None)


def ep(*services, policy, **kwargs):
    """``entrypoint(*services, policy=policy)`` without logging setup and
    without signal handlers, unless ``kwargs`` ask for them."""
    kwargs.setdefault("log_config", False)
    kwargs.setdefault("catch_signals", ())
    return entrypoint(*services, policy=policy, **kwargs)
