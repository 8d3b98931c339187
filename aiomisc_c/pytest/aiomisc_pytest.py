"""What ``import aiomisc_pytest`` gives under ``aiomisc_c.alias`` (when
aiomisc-pytest itself is not installed): the helpers of
``aiomisc_c.pytest`` under aiomisc-pytest's module name.

A module of its own rather than ``aiomisc_c.pytest``: pytest refuses one
module registered as a plugin under two names, and ``-p aiomisc_pytest``
(or ``pytest_plugins = ["aiomisc_pytest"]``) registers this one, which
loads the plugin once through ``pytest_plugins``.
"""
from aiomisc_c.pytest import (  # noqa: F401 - re-exported
    USE_UVLOOP, Delay, PortSocket, ProxyProcessorType, SocketWrapper,
    SocketWrapperUnix, SocketWrapperWindows, TCPProxy, TCPProxyClient,
    delayed_future, get_unused_port, isasyncgenerator, loop_autouse,
    mock_get_event_loop, socket_wrapper, unused_port, uvloop_module,
)

pytest_plugins = ["aiomisc_c.pytest"]
