"""``python -m aiomisc_c.worker``: the worker pool's supervisor."""
from .forking import main

if __name__ == "__main__":
    raise SystemExit(main() or 0)
