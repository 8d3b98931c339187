"""The supervisor's fork of a worker (``aiomisc_c.worker.forking.fork``),
in a real child interpreter."""
import signal
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.skipif(
    sys.platform == "win32", reason="the supervisor forks (POSIX only)",
)

# The script plays the supervisor: its stop handlers are installed, then it
# forks one worker.  A fork hook sends the new worker SIGTERM before the
# worker's own code runs, which is what at_exit() does to a worker forked a
# moment before the supervisor stops.
SCRIPT = textwrap.dedent("""
    import os, signal, sys
    from aiomisc_c.worker import forking

    def worker(address, cookie, worker_id):
        sys.stderr.write("worker ran\\n")
        os._exit(0)

    forking.worker = worker
    signal.signal(signal.SIGINT, forking.handle_interrupt)
    signal.signal(signal.SIGTERM, forking.handle_interrupt)
    os.register_at_fork(
        after_in_child=lambda: os.kill(os.getpid(), signal.SIGTERM),
    )
    before = signal.pthread_sigmask(signal.SIG_BLOCK, ())
    forking.fork(b"w1", b"cookie", "/nonexistent")
    after = signal.pthread_sigmask(signal.SIG_BLOCK, ())
    assert before == after, (before, after)
    (pid,) = forking.PROCESSES
    _, status = os.waitpid(pid, 0)
    print(os.WIFSIGNALED(status) and os.WTERMSIG(status))
""")


def test_a_stop_signal_at_fork_ends_the_worker_without_a_traceback():
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    # The worker died of SIGTERM, before its code ran, and quietly: it did
    # not run the supervisor's handler (KeyboardInterrupt, traceback, exit 1).
    assert result.stdout.strip() == str(int(signal.SIGTERM)), (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    assert "worker ran" not in result.stderr
