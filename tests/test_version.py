"""aiomisc_c's own version line, and the aiomisc API level it implements."""
import importlib.metadata
import os
import re

import aiomisc_c
from aiomisc_c import version

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# PEP 440 public versions
PEP440 = re.compile(
    r"^\d+(\.\d+)*((a|b|rc)\d+)?(\.post\d+)?(\.dev\d+)?$",
)


def test_package_version_is_its_own_line():
    assert PEP440.match(version.package_version)
    major = int(version.package_version.split(".")[0])
    assert major != 17          # never mistaken for an aiomisc 17 release
    parts = re.split(r"\.(?=dev)|\.", version.package_version)
    assert version.package_version_info[:3] == tuple(
        int(p) for p in parts[:3]
    )


def test_the_api_level_is_data():
    assert version.aiomisc_api_version == "17.10"
    assert version.AIOMISC_API_LEVEL == (17, 10)
    assert ".".join(map(str, version.AIOMISC_API_LEVEL)) == (
        version.aiomisc_api_version
    )


def test_aiomisc_style_version_attributes_keep_working():
    assert aiomisc_c.__version__ == version.__version__ == version.version
    assert aiomisc_c.version_info == version.version_info
    assert version.version_info == tuple(
        int(part) for part in aiomisc_c.__version__.split(".")
    )
    assert version.version_info[0] == 17        # aiomisc version checks pass
    assert version.version_info[:2] <= version.AIOMISC_API_LEVEL
    assert version.__version_tuple__ == version.version_tuple == (
        version.version_info
    )


def test_the_distribution_carries_the_package_version():
    with open(os.path.join(ROOT, "pyproject.toml"), encoding="utf-8") as fp:
        pyproject = fp.read()
    assert 'attr = "aiomisc_c.version.package_version"' in pyproject
    try:
        installed = importlib.metadata.version("aiomisc_c")
    except importlib.metadata.PackageNotFoundError:
        return  # imported from a source tree, not installed
    assert installed == version.package_version
