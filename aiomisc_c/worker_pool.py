"""A pool of long-lived worker processes (mirror of ``aiomisc.worker_pool``).

The pool listens on a private Unix socket; its supervisor
(``python -m aiomisc_c.worker``) forks the workers, which connect back.

* Authentication comes first and reads a fixed-size message only (worker
  id, HMAC-SHA256 digest, pid; see :mod:`aiomisc_c.worker.protocol`),
  checked with :func:`hmac.compare_digest`.  Nothing a peer sends is
  unpickled before it passed; a peer that fails is refused and counted as
  ``bad_auth``; one that stays silent is dropped after
  ``HANDSHAKE_TIMEOUT`` seconds.
* Jobs are pickled once, in the caller (a function's pickle is cached),
  and written straight to an idle worker's transport: no queue hop and no
  task per call.  Replies are received into a buffer of the connection
  (``asyncio.BufferedProtocol``: no allocation per read), parsed in
  ``buffer_updated`` and resolve the caller's future directly.
"""
import asyncio
import hmac
import logging
import os
import pickle
import shutil
import signal
import socket
import sys
import tempfile
from collections import deque
from multiprocessing import ProcessError
from subprocess import PIPE, Popen
from types import MappingProxyType
from typing import (
    Any, Callable, Deque, Dict, List, Mapping, Optional, ParamSpec, Set,
    Tuple, TypeVar,
)

from .counters import Statistic
from .worker import COOKIE_SIZE, INT_SIGNAL, AddressType, PacketTypes
from .worker.protocol import (
    HANDSHAKE, MAX_PACKET_SIZE, PACKET_HEADER, PICKLE_PROTOCOL,
    WORKER_ID_SIZE, handshake_digest, pack_request, unpack_handshake,
)

__all__ = ("RemoteTraceback", "WorkerPool", "WorkerPoolStatistic")

P = ParamSpec("P")
T = TypeVar("T")
log = logging.getLogger(__name__)

_RESULT = int(PacketTypes.RESULT)
_EXCEPTION = int(PacketTypes.EXCEPTION)
_CANCELLED = int(PacketTypes.CANCELLED)
_AUTH = int(PacketTypes.AUTH)
_BAD_INITIALIZER = int(PacketTypes.BAD_INITIALIZER)
_AUTH_OK = bytes((PacketTypes.AUTH_OK,))
_AUTH_FAIL = bytes((PacketTypes.AUTH_FAIL,))
_HEADER_SIZE = PACKET_HEADER.size
_unpack_header = PACKET_HEADER.unpack_from


class WorkerPoolStatistic(Statistic):
    processes: int      # authenticated worker connections now
    spawning: int       # authenticated worker connections ever
    queue_size: int     # jobs waiting for an idle worker now
    submitted: int
    sum_time: float
    done: int
    success: int
    error: int
    bad_auth: int       # peers refused by the handshake
    task_added: int     # jobs that had to wait for a worker


class RemoteTraceback(Exception):
    """The ``__cause__`` of an exception re-raised from a worker: its
    ``str()`` is the traceback text printed in the worker."""

    def __init__(self, tb: str):
        super().__init__(tb)
        self.tb = tb

    def __str__(self) -> str:
        return self.tb


class _Job:
    __slots__ = ("frame", "future", "started", "connection", "counted")

    def __init__(self, frame: bytes, future: asyncio.Future[Any], started: float):
        self.frame = frame
        self.future = future
        self.started = started
        self.connection: Optional["_WorkerConnection"] = None
        # True once the statistics counted it as done.
        self.counted = False


# Bytes a worker connection receives into at once; a larger reply grows the
# buffer for its time.
_RECEIVE_BUFFER_SIZE = 65536


class _WorkerConnection(asyncio.BufferedProtocol):
    """One peer of the pool's socket: a handshake, then jobs one by one.

    Bytes are received into a buffer of this connection (no allocation per
    read); until the handshake passed, that buffer holds one handshake and
    one byte more, which is refused."""

    HANDSHAKE = 0
    READY = 1
    INITIALIZER_FAILED = 2
    CLOSED = 3

    def __init__(self, pool: "WorkerPool"):
        self.pool = pool
        self.state = self.HANDSHAKE
        self.transport: Optional[asyncio.Transport] = None
        self.buffer = bytearray(HANDSHAKE.size + 1)
        self.view = memoryview(self.buffer)
        self.filled = 0
        # Size of the frame being received, when it does not fit the buffer.
        self.pending = 0
        self.pid: Optional[int] = None
        self.job: Optional[_Job] = None
        self.timer: Optional[asyncio.TimerHandle] = None

    # -- asyncio.BufferedProtocol ------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        if self.pool._closing:
            self.close()
            return
        self.timer = self.pool.loop.call_later(
            self.pool.HANDSHAKE_TIMEOUT, self.refuse, "handshake timeout",
        )

    def get_buffer(self, sizehint: int) -> memoryview:
        if self.filled == len(self.buffer):
            if self.state == self.READY or self.state == self.INITIALIZER_FAILED:
                # A frame larger than the buffer: grow in steps, so that
                # memory follows the bytes that really arrived.
                size = len(self.buffer)
                self._resize(min(2 * size, max(self.pending, size + 1)))
            else:   # refused already: the transport is closing
                self.filled = 0
        return self.view[self.filled:]

    def buffer_updated(self, nbytes: int) -> None:
        self.filled += nbytes
        state = self.state
        if state == self.READY or state == self.INITIALIZER_FAILED:
            self._frames()
        elif state == self.HANDSHAKE:
            self._handshake()
        else:
            self.filled = 0

    def connection_lost(self, exc: Optional[Exception]) -> None:
        was_ready = self.state == self.READY
        self.state = self.CLOSED
        self._cancel_timer()
        job, self.job = self.job, None
        if job is not None and not job.future.done():
            self.pool._finish(job, exception=ProcessError(
                f"Process {self.pid!r} unexpected exited",
            ))
        if was_ready:
            self.pool._worker_lost(self)

    def _resize(self, size: int) -> None:
        buffer = bytearray(size)
        buffer[:self.filled] = self.view[:self.filled]
        self.buffer, self.view = buffer, memoryview(buffer)

    # -- handshake ---------------------------------------------------------

    def _handshake(self) -> None:
        # A worker waits for the answer before it sends anything else.
        if self.filled > HANDSHAKE.size:
            self.refuse("data after the handshake")
            return
        if self.filled < HANDSHAKE.size:
            return
        handshake = unpack_handshake(bytes(self.view[:HANDSHAKE.size]))
        self.filled = 0
        reason = self.pool._check_handshake(handshake)
        if reason is not None:
            self.refuse(reason)
            return
        assert handshake is not None
        self._cancel_timer()
        self.buffer = bytearray(_RECEIVE_BUFFER_SIZE)
        self.view = memoryview(self.buffer)
        self.pid = handshake.pid
        self.transport.write(_AUTH_OK)  # type: ignore[union-attr]
        if handshake.kind == _BAD_INITIALIZER:
            self.state = self.INITIALIZER_FAILED
        else:
            self.state = self.READY
            self.pool._worker_ready(self)

    def refuse(self, reason: str) -> None:
        """Refuse an unauthenticated peer (counted as ``bad_auth``)."""
        if self.state != self.HANDSHAKE:
            return
        self.state = self.CLOSED
        self._cancel_timer()
        self.filled = 0
        self.pool._statistic.bad_auth += 1
        log.warning("Refused a connection to the worker pool: %s", reason)
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.write(_AUTH_FAIL)
            transport.close()

    # -- frames ------------------------------------------------------------

    def _frames(self) -> None:
        buffer = self.buffer
        view = self.view
        filled = self.filled
        limit = self.pool.MAX_PACKET_SIZE
        start = 0
        while filled - start >= _HEADER_SIZE:
            (size,) = _unpack_header(buffer, start)
            if size > limit:
                self.kill(f"sent a packet of {size} bytes (limit {limit})")
                return
            end = start + _HEADER_SIZE + size
            if end > filled:
                break
            self.on_frame(view[start + _HEADER_SIZE:end])
            start = end
            if self.state == self.CLOSED:
                self.filled = 0
                return
        rest = filled - start
        if start and rest:
            buffer[:rest] = buffer[start:filled]
        self.filled = rest
        if rest >= _HEADER_SIZE:
            self.pending = _HEADER_SIZE + _unpack_header(buffer)[0]
        elif not rest and len(buffer) > _RECEIVE_BUFFER_SIZE:
            self.buffer = bytearray(_RECEIVE_BUFFER_SIZE)
            self.view = memoryview(self.buffer)

    def on_frame(self, payload: Any) -> None:
        if self.state == self.INITIALIZER_FAILED:
            self.pool._initializer_failed(self._load_reply(payload, None))
            self.close()
            return
        job, self.job = self.job, None
        self._cancel_timer()
        if job is None:
            self.kill("sent a reply without a request")
            return
        reply = self._load_reply(payload, job)
        if reply is not None:
            self.pool._finish(job, *reply)
        self.pool._worker_idle(self)

    def _load_reply(self, payload: Any, job: Optional[_Job]) -> Optional[Tuple[Any, ...]]:
        """``(result, exception)`` from a reply frame."""
        try:
            reply = pickle.loads(payload)
            kind = reply[0]
            if kind == _RESULT:
                return reply[1], None
            if kind == _EXCEPTION:
                exc, text = reply[1:]
                exc.__cause__ = RemoteTraceback(text)
                return None, exc
        except Exception as e:
            error = pickle.UnpicklingError(
                f"Can not unpickle the reply of worker PID {self.pid}: {e!r}",
            )
            return None, error
        if kind == _CANCELLED:
            return None, asyncio.CancelledError()
        return None, RuntimeError(f"Unexpected packet {kind!r} from a worker")

    # -- jobs --------------------------------------------------------------

    def run(self, job: _Job) -> None:
        job.connection = self
        self.job = job
        self.transport.write(job.frame)  # type: ignore[union-attr]

    def kill(self, reason: str, level: int = logging.WARNING) -> None:
        """Kill the worker (its supervisor reaps it and forks a new one)."""
        log.log(level, "Killing worker PID %s: %s", self.pid, reason)
        if self.pid is not None:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except OSError:
                pass
        self.close()

    def close(self) -> None:
        self._cancel_timer()
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.close()

    def _cancel_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None


def _create_socket() -> Tuple[socket.socket, str, str]:
    """A listening-ready Unix socket in a fresh private directory."""
    directory = tempfile.mkdtemp(prefix="aiomisc-c-worker-")
    path = os.path.join(directory, "pool.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(path)
        os.chmod(path, 0o600)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        shutil.rmtree(directory, ignore_errors=True)
        raise
    return sock, path, directory


class WorkerPool:
    """Long-lived worker processes that run picklable functions."""

    SERVER_CLOSE_TIMEOUT = 1
    # Seconds a peer has to send its handshake.
    HANDSHAKE_TIMEOUT = 10
    # Seconds the supervisor has to exit after close() before it is killed.
    SUPERVISOR_EXIT_TIMEOUT = 5
    MAX_PACKET_SIZE = MAX_PACKET_SIZE

    tasks: Deque[_Job]
    server: asyncio.AbstractServer
    address: AddressType
    worker_ids: Tuple[bytes, ...]
    pids: Set[int]

    def __init__(
        self,
        workers: int,
        max_overflow: int = 0,
        *,
        initializer: Optional[Callable[..., Any]] = None,
        initializer_args: Tuple[Any, ...] = (),
        initializer_kwargs: Mapping[str, Any] = MappingProxyType({}),
        statistic_name: Optional[str] = None,
    ):
        if isinstance(workers, bool) or not isinstance(workers, int):
            raise TypeError(f"workers must be an int, not {type(workers).__name__}")
        if workers < 1:
            raise ValueError("workers must be greater than 0")
        if isinstance(max_overflow, bool) or not isinstance(max_overflow, int):
            raise TypeError(
                f"max_overflow must be an int, not {type(max_overflow).__name__}",
            )
        if max_overflow < 0:
            raise ValueError("max_overflow must not be negative")
        if initializer is not None and not callable(initializer):
            raise TypeError(
                f"initializer must be callable, not {type(initializer).__name__}",
            )
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._closing = False
        self._close_task: Optional[asyncio.Task[Any]] = None
        self._supervisor: Optional[Popen[bytes]] = None
        self._initializer_error: Optional[BaseException] = None
        self._statistic = WorkerPoolStatistic(name=statistic_name)
        self._counts, self._submitted_slot = self._statistic._counter_slot("submitted")
        self._done_slot = self._statistic._counter_slot("done")[1]
        self._success_slot = self._statistic._counter_slot("success")[1]
        self._error_slot = self._statistic._counter_slot("error")[1]
        self._times, self._sum_time_slot = self._statistic._counter_slot("sum_time")
        self._max_overflow = max_overflow
        self._idle: List[_WorkerConnection] = []
        self._connections: Set[_WorkerConnection] = set()
        self._space_waiters: Deque[asyncio.Future[Any]] = deque()
        self.tasks = deque()
        self.workers = workers
        self.pids = set()
        self.worker_ids = ()
        self.initializer = initializer
        self.initializer_args = tuple(initializer_args)
        self.initializer_kwargs = initializer_kwargs
        self.__cookie = os.urandom(COOKIE_SIZE)
        self.socket, self.address, self._directory = _create_socket()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        return self._loop

    # -- life cycle --------------------------------------------------------

    async def start(self) -> None:
        if self._closing:
            raise RuntimeError("Pool closed")
        if hasattr(self, "server"):
            raise RuntimeError("Pool already started")
        loop = self.loop
        self.socket.listen(max(self.workers * 2, 16))
        self.server = await loop.create_unix_server(
            lambda: _WorkerConnection(self), sock=self.socket,
        )
        del self.socket
        self.worker_ids = tuple(os.urandom(WORKER_ID_SIZE) for _ in range(self.workers))
        self._worker_id_set = frozenset(self.worker_ids)
        self._supervisor = await loop.run_in_executor(None, self._create_supervisor)
        if self._closing:   # closed while the supervisor was starting
            self._kill_supervisor()

    def _create_supervisor(self) -> Popen[bytes]:
        from .log.core import LOG_FORMAT, LOG_LEVEL

        env = dict(os.environ)
        env["AIOMISC_NO_PLUGINS"] = ""
        package_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        env["PYTHONPATH"] = os.pathsep.join(
            filter(None, (package_root, env.get("PYTHONPATH"))),
        )
        settings = [
            (LOG_LEVEL.get(), LOG_FORMAT.get()),
            self.address,
            self.__cookie,
            self.worker_ids,
            list(sys.path),
            (self.initializer, self.initializer_args, dict(self.initializer_kwargs)),
        ]
        # Pickled before the process starts: an unpicklable initializer is
        # the caller's error, raised by start().
        try:
            frames = b"".join(
                PACKET_HEADER.pack(len(data)) + data
                for data in (pickle.dumps(item, PICKLE_PROTOCOL) for item in settings)
            )
        except Exception as e:
            raise pickle.PicklingError(
                f"Can not pickle the initializer {self.initializer!r}: {e}",
            ) from e
        process = Popen(
            [sys.executable, "-m", "aiomisc_c.worker"], stdin=PIPE, env=env,
        )
        assert process.stdin is not None
        try:
            process.stdin.write(frames)
        finally:
            process.stdin.close()
        return process

    async def close(self) -> None:
        """Stop the workers and the server; pending calls are cancelled.
        Idempotent; a cancelled caller does not interrupt the shutdown."""
        self._start_closing()
        await asyncio.shield(self._close_task)  # type: ignore[arg-type]

    def _start_closing(self) -> None:
        # Synchronously: no call made after this point is accepted.
        self._closing = True
        if self._close_task is None:
            self._close_task = self.loop.create_task(self._close())

    async def _close(self) -> None:
        self._closing = True
        self._kill_supervisor()
        server = getattr(self, "server", None)
        if server is not None:
            server.close()
        for connection in tuple(self._connections):
            if connection.job is not None:
                connection.job.future.cancel()
            connection.close()
        for job in self.tasks:
            job.future.cancel()
        self.tasks.clear()
        self._statistic.queue_size = 0
        for waiter in self._space_waiters:
            waiter.cancel()
        if server is not None:
            try:
                await asyncio.wait_for(server.wait_closed(), self.SERVER_CLOSE_TIMEOUT)
            except asyncio.TimeoutError:
                pass
        await self._reap_supervisor()
        self._remove_socket()

    def _kill_supervisor(self) -> None:
        supervisor = self._supervisor
        if supervisor is None or supervisor.poll() is not None:
            return
        log.debug(
            "Sending %r to supervisor process PID: %d. Workers: %r",
            INT_SIGNAL, supervisor.pid, self.pids,
        )
        try:
            os.kill(supervisor.pid, INT_SIGNAL)
        except OSError:
            pass

    async def _reap_supervisor(self) -> None:
        supervisor = self._supervisor
        if supervisor is None:
            return
        loop = self.loop
        deadline = loop.time() + self.SUPERVISOR_EXIT_TIMEOUT
        delay = 0.001
        while supervisor.poll() is None and loop.time() < deadline:
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.05)
        if supervisor.poll() is None:
            log.warning("Killing the worker pool supervisor PID %d", supervisor.pid)
            supervisor.kill()
            await loop.run_in_executor(None, supervisor.wait)

    def _remove_socket(self) -> None:
        sock = self.__dict__.pop("socket", None)
        if sock is not None:
            sock.close()
        shutil.rmtree(self._directory, ignore_errors=True)

    def __del__(self) -> None:
        if "_directory" not in self.__dict__:
            return
        self._kill_supervisor()
        self._remove_socket()

    async def __aenter__(self) -> "WorkerPool":
        await self.start()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    # -- jobs --------------------------------------------------------------

    async def create_task(
        self, func: Callable[P, T], *args: P.args, **kwargs: P.kwargs,
    ) -> T:
        """Run ``func(*args, **kwargs)`` in a worker; its result, or its
        exception (with the worker's traceback text as ``__cause__``)."""
        if not callable(func):
            raise TypeError(f"func must be callable, not {type(func).__name__}")
        if self._closing:
            if self._initializer_error is not None:
                raise self._initializer_error
            raise RuntimeError("Pool closed")
        if not hasattr(self, "server"):
            raise RuntimeError("Pool is not started")
        try:
            frame = pack_request(func, args, kwargs)
        except Exception as e:
            raise pickle.PicklingError(
                f"Can not pickle the task {func!r} for a worker process: {e}",
            ) from e
        if len(frame) - _HEADER_SIZE > self.MAX_PACKET_SIZE:
            raise ValueError(
                f"The task is {len(frame) - _HEADER_SIZE} bytes pickled, more "
                f"than {self.MAX_PACKET_SIZE}",
            )
        loop = self._loop or self.loop
        job = _Job(frame, loop.create_future(), loop.time())
        self._counts[self._submitted_slot] += 1
        try:
            idle = self._idle
            if idle:
                idle.pop().run(job)
            else:
                if self._max_overflow:
                    await self._wait_for_space()
                self._dispatch(job)
            result: T = await job.future
            return result
        except asyncio.CancelledError:
            self._job_cancelled(job)
            raise

    def _job_cancelled(self, job: _Job) -> None:
        """The caller of ``job`` was cancelled: a queued job leaves the
        queue, a running one takes its worker down with it (the supervisor
        reaps it and forks a fresh one, which inherits the initializer's
        state).  Killing is the only way to stop any code at once: a
        signal handler runs between bytecodes only, and a job may catch
        what it raises."""
        if self._closing:
            return
        connection = job.connection
        if connection is None:
            try:
                self.tasks.remove(job)
            except ValueError:
                pass
            else:
                self._statistic.queue_size = len(self.tasks)
                self._wake_space_waiter()
        elif connection.job is job:
            connection.kill("its job was cancelled", level=logging.DEBUG)
        if not job.counted:
            job.counted = True
            statistic = self._statistic
            statistic.done += 1
            statistic.error += 1
            statistic.sum_time += self.loop.time() - job.started

    async def _wait_for_space(self) -> None:
        while len(self.tasks) >= self._max_overflow and not self._idle:
            waiter = self.loop.create_future()
            self._space_waiters.append(waiter)
            await waiter
            if self._closing:
                raise RuntimeError("Pool closed")

    def _dispatch(self, job: _Job) -> None:
        idle = self._idle
        if idle:
            idle.pop().run(job)
            return
        self.tasks.append(job)
        self._statistic.task_added += 1
        self._statistic.queue_size = len(self.tasks)

    def _finish(
        self, job: _Job, result: Any = None, exception: Optional[BaseException] = None,
    ) -> None:
        # The statistic's buffers, not its attributes: two lookups less each.
        counts = self._counts
        job.counted = True
        counts[self._done_slot] += 1
        self._times[self._sum_time_slot] += self.loop.time() - job.started
        future = job.future
        if exception is None:
            counts[self._success_slot] += 1
            if not future.done():
                future.set_result(result)
            return
        counts[self._error_slot] += 1
        if future.done():
            return
        if isinstance(exception, asyncio.CancelledError):
            future.cancel()
        else:
            future.set_exception(exception)

    # -- worker connections (called by _WorkerConnection) ------------------

    def _check_handshake(self, handshake: Any) -> Optional[str]:
        """``None`` when ``handshake`` authenticates a worker, else why not."""
        if handshake is None:
            return "not a handshake"
        if handshake.kind not in (_AUTH, _BAD_INITIALIZER):
            return f"unexpected handshake kind {handshake.kind}"
        expected = handshake_digest(
            self.__cookie, handshake.kind, handshake.worker_id, handshake.pid,
        )
        # Both checks always run: the time taken tells nothing.
        digest_ok = hmac.compare_digest(expected, handshake.digest)
        known = handshake.worker_id in getattr(self, "_worker_id_set", ())
        if not digest_ok:
            return "bad digest"
        if not known:
            return "unknown worker id"
        return None

    def _worker_ready(self, connection: _WorkerConnection) -> None:
        self._connections.add(connection)
        self._statistic.processes += 1
        self._statistic.spawning += 1
        self.pids.add(connection.pid)  # type: ignore[arg-type]
        self._worker_idle(connection)

    def _worker_idle(self, connection: _WorkerConnection) -> None:
        if connection.state != connection.READY:
            return
        tasks = self.tasks
        while tasks:
            job = tasks.popleft()
            self._statistic.queue_size = len(tasks)
            self._wake_space_waiter()
            if job.future.done():
                continue
            connection.run(job)
            return
        self._idle.append(connection)

    def _wake_space_waiter(self) -> None:
        while self._space_waiters:
            waiter = self._space_waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def _worker_lost(self, connection: _WorkerConnection) -> None:
        self._connections.discard(connection)
        if connection in self._idle:
            self._idle.remove(connection)
        self._statistic.processes -= 1
        self.pids.discard(connection.pid)

    def _initializer_failed(self, reply: Optional[Tuple[Any, Any]]) -> None:
        exception = reply[1] if reply is not None else None
        if not isinstance(exception, BaseException):
            exception = RuntimeError("The worker pool initializer failed")
        self._initializer_error = exception
        for job in self.tasks:
            if not job.future.done():
                job.future.set_exception(exception)
        self.tasks.clear()
        self._statistic.queue_size = 0
        self._start_closing()

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} workers={self.workers} "
            f"pids={sorted(self.pids)} at {id(self):#x}>"
        )
