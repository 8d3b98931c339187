"""The operations services that need a third-party package say which extra
to install when it is missing; the package and ``aiomisc_c.service`` do not
need any of them."""
import subprocess
import sys

import pytest
from helpers.childproc import NEUTRAL_CWD, child_env

BLOCK_AND_IMPORT = """
import sys
for name in {blocked!r}:
    sys.modules[name] = None          # as if not installed
import aiomisc_c, aiomisc_c.service
try:
    import {module}
except ImportError as exc:
    print(exc)
else:
    print("imported")
"""


@pytest.mark.subprocess
@pytest.mark.parametrize("module, blocked, extra", [
    ("aiomisc_c.service.dns", ["dnslib"], "dns"),
    ("aiomisc_c.service.carbon", ["aiocarbon"], "carbon"),
    ("aiomisc_c.service.raven", ["raven"], "raven"),
    ("aiomisc_c.service.raven", ["aiohttp"], "raven"),
])
def test_missing_package_names_the_extra(module, blocked, extra):
    result = subprocess.run(
        [sys.executable, "-c", BLOCK_AND_IMPORT.format(
            blocked=blocked, module=module,
        )],
        cwd=NEUTRAL_CWD, env=child_env(), capture_output=True, text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert f"pip install 'aiomisc_c[{extra}]'" in result.stdout
    assert module in result.stdout


@pytest.mark.subprocess
def test_dependency_free_services_import_without_extras():
    code = BLOCK_AND_IMPORT.format(
        blocked=["dnslib", "aiocarbon", "raven", "aiohttp"],
        module="aiomisc_c.service.sdwatchdog, aiomisc_c.service.profiler, "
               "aiomisc_c.service.tracer",
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=NEUTRAL_CWD, env=child_env(),
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "imported"


OLD_AIOCARBON = """
import sys, types
# aiocarbon 0.16's client signature (it passes loop= to asyncio).
base = types.ModuleType("aiocarbon.protocol.base")
class BaseClient:
    def __init__(self, host, port, loop=None, storage=None, namespace=None):
        pass
base.BaseClient = BaseClient
sys.modules["aiocarbon.protocol.base"] = base
try:
    import aiomisc_c.service.carbon
except ImportError as exc:
    print(exc)
"""


@pytest.mark.subprocess
def test_carbon_rejects_aiocarbon_before_0_17():
    pytest.importorskip("aiocarbon")
    result = subprocess.run(
        [sys.executable, "-c", OLD_AIOCARBON], cwd=NEUTRAL_CWD,
        env=child_env(), capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "needs aiocarbon>=0.17" in result.stdout
