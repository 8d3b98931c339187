"""ProcessService and RespawningProcessService with real child processes."""
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from aiomisc_c.service import ProcessService, RespawningProcessService
from helpers.childproc import NEUTRAL_CWD, child_env
from helpers.processes import descendants
from helpers.quiet_entrypoint import ep
from helpers.waiting import wait_until, wait_until_sync

pytestmark = [pytest.mark.timeout(60), pytest.mark.subprocess]

# Children start from the fork server: forking this (threaded) test process
# is deprecated on recent Pythons.
START_METHOD = "forkserver"


def multiprocessing_helpers():
    """The fork server and the resource tracker: they live as long as
    this process, by design."""
    from multiprocessing import forkserver, resource_tracker

    return {
        getattr(forkserver._forkserver, "_forkserver_pid", None),
        getattr(resource_tracker._resource_tracker, "_pid", None),
    }


def new_children(before):
    return descendants() - before - multiprocessing_helpers()


class WritesPid(ProcessService):
    process_start_method = START_METHOD

    def in_process(self, path, linger=0.0):
        with open(path, "a") as fp:
            fp.write(f"{os.getpid()}\n")
        time.sleep(linger)


class FileWriter(WritesPid):
    def get_process_kwargs(self):
        return {"path": self.path, "linger": 600}


class QuickExit(RespawningProcessService, WritesPid):
    process_start_method = START_METHOD

    def get_process_kwargs(self):
        return {"path": self.path}


class IgnoresSigint(ProcessService):
    process_start_method = START_METHOD

    def in_process(self, path):
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        with open(path, "w") as fp:
            fp.write(str(os.getpid()))
        time.sleep(600)

    def get_process_kwargs(self):
        return {"path": self.path}


def pids_in(path):
    return [int(line) for line in path.read_text().split()] if path.exists() else []


def test_needs_in_process():
    class NoWork(ProcessService):
        pass

    with pytest.raises(TypeError):
        NoWork()


def test_child_writes_a_file_and_stops_with_the_entrypoint(tmp_path, policy):
    path = tmp_path / "pids"
    before = descendants()
    service = FileWriter(path=str(path), name="writer")
    with ep(service, policy=policy):
        wait_until_sync(lambda: pids_in(path), message="the child's file")
        pid = pids_in(path)[0]
        assert service.process.pid == pid
        assert service.process.name == "writer"
        assert repr(service).endswith(f"name='writer', pid={pid}>")
    assert "process" not in service.__dict__
    wait_until_sync(lambda: not new_children(before), message="child reaped")


def test_respawn(tmp_path, policy):
    path = tmp_path / "pids"
    before = descendants()
    service = QuickExit(path=str(path), process_poll_timeout=0.2)
    with ep(service, policy=policy) as loop:
        # The supervisor polls in the loop: run it while waiting.
        loop.run_until_complete(
            wait_until(lambda: len(set(pids_in(path))) >= 2, message="a respawn"),
        )
    pids = pids_in(path)
    assert len(set(pids)) == len(pids)   # a new process every time
    wait_until_sync(lambda: not new_children(before), message="children reaped")


def test_stubborn_child_is_killed(tmp_path, policy, caplog):
    path = tmp_path / "pid"
    before = descendants()
    service = IgnoresSigint(path=str(path), process_stop_timeout=0.3)
    with ep(service, policy=policy):
        wait_until_sync(lambda: path.exists() and path.read_text(), message="child")
    assert "had been killed" in caplog.text
    wait_until_sync(lambda: not new_children(before), message="child reaped")


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="fork of a threaded process")
def test_default_start_method(tmp_path, policy):
    class Forked(FileWriter):
        process_start_method = None

    path = tmp_path / "pids"
    before = descendants()
    with ep(Forked(path=str(path)), policy=policy):
        wait_until_sync(lambda: pids_in(path), message="the child's file")
    wait_until_sync(lambda: not new_children(before), message="child reaped")


SIGTERM_SCRIPT = textwrap.dedent("""
    import os, sys, time
    from aiomisc_c import entrypoint
    from aiomisc_c.service import ProcessService

    class Worker(ProcessService):
        process_start_method = "spawn"

        def in_process(self, path):
            with open(path, "w") as fp:
                fp.write(str(os.getpid()))
            time.sleep(600)

        def get_process_kwargs(self):
            return {"path": self.path}

    if __name__ == "__main__":
        with entrypoint(Worker(path=sys.argv[1]), log_config=False) as loop:
            loop.run_forever()
""")


def process_state(pid):
    try:
        with open(f"/proc/{pid}/stat") as fp:
            return fp.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return None


def test_sigterm_stops_the_child(tmp_path):
    script = tmp_path / "service.py"
    script.write_text(SIGTERM_SCRIPT)
    pid_file = tmp_path / "child.pid"
    parent = subprocess.Popen(
        [sys.executable, str(script), str(pid_file)],
        cwd=NEUTRAL_CWD, env=child_env(),
    )
    try:
        wait_until_sync(
            lambda: pid_file.exists() and pid_file.read_text(), timeout=30,
            message="the service's child",
        )
        child = int(pid_file.read_text())
        assert child in descendants(parent.pid)
        parent.send_signal(signal.SIGTERM)
        assert parent.wait(30) == 0
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
    # Neither running nor a zombie.
    wait_until_sync(lambda: process_state(child) is None, message="child gone")
