"""What a test process owns, read from /proc: its descendant processes and
its open file descriptors (Linux)."""
import os


def _parents():
    parents = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as fp:
                stat = fp.read()
        except OSError:
            continue   # exited meanwhile
        # The command name is in parentheses and may contain spaces.
        fields = stat[stat.rindex(b")") + 2:].split()
        parents[int(entry)] = int(fields[1])
    return parents


def descendants(pid=None):
    """PIDs of every live (or zombie) descendant of ``pid`` (default: us)."""
    root = os.getpid() if pid is None else pid
    parents = _parents()
    found, frontier = set(), {root}
    while frontier:
        children = {child for child, parent in parents.items() if parent in frontier}
        children -= found
        found |= children
        frontier = children
    return found


def open_fds():
    """The file descriptors open in this process."""
    return set(os.listdir("/proc/self/fd"))
