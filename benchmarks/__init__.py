"""Benchmarks of aiomisc_c against aiomisc 17.x and the stdlib.

Run them all with ``python -m benchmarks`` (see README.rst here).
"""
