"""An executor that records every function it is given (to tell which
operations reached a thread and which did not)."""

from concurrent.futures import ThreadPoolExecutor


class RecordingExecutor(ThreadPoolExecutor):
    """A stdlib thread pool that appends each submitted function to
    ``seen``."""

    def __init__(self, seen, max_workers=1):
        super().__init__(max_workers)
        self.seen = seen

    def submit(self, fn, *args, **kwargs):
        self.seen.append(fn)
        return super().submit(fn, *args, **kwargs)
