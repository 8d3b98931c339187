""" Versions: aiomisc_c's own, and the aiomisc API level it implements.

``package_version`` is this distribution's version (what ``pip`` shows); it
has its own numbering, so it is never mistaken for an aiomisc release.

``__version__`` / ``version_info`` are what code written for aiomisc reads
(``aiomisc.__version__``): they report an aiomisc 17.x version, so that
version checks written for aiomisc keep passing under
``import aiomisc_c as aiomisc``.
"""
__all__ = (
    "AIOMISC_API_LEVEL", "__version__", "__version_tuple__",
    "aiomisc_api_version", "package_version", "package_version_info",
    "version", "version_info", "version_tuple",
)

# The version of the aiomisc_c distribution.
package_version = "0.1.0.dev0"
package_version_info = (0, 1, 0, "dev0")

# The aiomisc API level implemented (the documented API of aiomisc 17.10).
aiomisc_api_version = "17.10"
AIOMISC_API_LEVEL = (17, 10)

# aiomisc-compatible version attributes (major component 17, as aiomisc's).
__version__ = "17.5.100"
version_info = tuple(int(part) for part in __version__.split("."))

# 18.x spellings
__version_tuple__ = version_info
version = __version__
version_tuple = version_info
