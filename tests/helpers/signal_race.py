"""Child-process source that makes a signal miss the main thread.

CPython's C-level signal handler only marks a signal pending; the Python
handler runs when the main thread next executes bytecode.  If the signal
lands while the main thread is on its way into a blocking call, or in
another thread, nothing interrupts that call.  ``SOURCE`` (prepended to a
child's script) defines ``take_signal_in_a_thread(signum, wait_kind)``: it
starts a thread that waits until the main thread sleeps in the kernel
(``wait_kind`` ``"loop"``: ``epoll_wait``; ``"sleep"``: ``nanosleep``) and
then takes ``signum`` itself, which reproduces that window every time.
Linux only (it reads ``/proc/self/task``).
"""

SOURCE = '''
import os as _os, platform as _platform, signal as _signal
import threading as _threading, time as _time

# wchan words and syscall numbers (x86_64, aarch64) of each way to sleep;
# time.sleep is clock_nanosleep from Python 3.11 on, pselect6 before
_WCHAN_WORDS = {
    "loop": ("epoll", "ep_poll"),
    "sleep": ("nanosleep", "poll_schedule_timeout"),
}
_SYSCALLS = {
    "loop": {"x86_64": {"232", "281", "441"}, "aarch64": {"22", "441"}},
    "sleep": {"x86_64": {"35", "230", "270"}, "aarch64": {"72", "101", "115"}},
}

def _main_thread_sleeps(wait_kind):
    task = f"/proc/self/task/{_threading.main_thread().native_id}"
    with open(f"{task}/wchan") as f:
        wchan = f.read()
    if any(word in wchan for word in _WCHAN_WORDS[wait_kind]):
        return True
    with open(f"{task}/syscall") as f:
        number = f.read().split()[0]
    return number in _SYSCALLS[wait_kind].get(_platform.machine(), ())

def take_signal_in_a_thread(signum, wait_kind):
    def take():
        while not _main_thread_sleeps(wait_kind):
            _time.sleep(0.01)
        _signal.pthread_kill(_threading.get_ident(), signum)

    # Started from the main thread: the signal is not blocked in it.
    _threading.Thread(target=take, name="takes-the-signal").start()
'''
