"""Polling helpers for tests that wait on other threads."""
import asyncio
import time

POLL_INTERVAL = 0.005


def wait_until_sync(predicate, timeout=10.0, message="condition"):
    """Block until ``predicate()`` is true; AssertionError after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {message}")
        time.sleep(POLL_INTERVAL)


async def wait_until(predicate, timeout=10.0, message="condition"):
    """Like :func:`wait_until_sync`, yielding to the loop between polls."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {message}")
        await asyncio.sleep(POLL_INTERVAL)


async def wait_event(event, timeout=10.0):
    """Wait, without blocking the loop, for a ``threading.Event``."""
    await wait_until(event.is_set, timeout, "a threading.Event")
