# Types of the C pool acquisition (csrc/pool/); the Python twin is
# aiomisc_c/_pool_py.py, typed the same way (tests/test_stubs.py).
from typing import Any, Awaitable

class Acquisition:
    def __init__(self, pool: Any, /) -> None: ...
    async def __aenter__(self) -> Any: ...
    def __aexit__(
        self, exc_type: Any, exc_value: Any, traceback: Any, /,
    ) -> Awaitable[None]: ...
