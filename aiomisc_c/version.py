""" Version of aiomisc_c; the major component follows the aiomisc API line. """
__version__ = "17.5.100"
version_info = tuple(int(part) for part in __version__.split("."))

# 18.x spellings
__version_tuple__ = version_info
version = __version__
version_tuple = version_info
