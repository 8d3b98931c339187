"""The module behind the ``pytest11`` entry point ``aiomisc_c``.

It only loads ``aiomisc_c.pytest``: pytest refuses one module registered
under two names, and ``-p aiomisc_c.pytest`` registers that module under
its own name, so the entry point must name another module.
"""
pytest_plugins = ["aiomisc_c.pytest"]
