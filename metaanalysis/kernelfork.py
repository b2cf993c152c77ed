"""Note kernels forked from a warm template (for :mod:`metaanalysis.kernels`).

A note's kernel spends most of its start importing: IPython and ipykernel, numpy, scipy,
pandas, matplotlib and this library, 1 to 2 s of CPU per note, the same modules for every
note. A *template* is a process that does these imports once, before any notebook is known,
then forks one kernel per note. Each note still runs in its own fresh kernel: a new process,
forked from a template that has run no note, started by ipykernel exactly as
``python -m ipykernel_launcher -f CONNECTION`` starts it (the same interpreter and options,
environment, working folder, arguments and standard streams), but offering no debugger
(importing debugpy is 0.2-0.3 s of the template's imports, and a render has no frontend; a
note's cell can still import it). The template only imports modules that do not look at
the running IPython when imported (``matplotlib_inline``'s backend does, so it is left to
the kernel); it sets ``MPLBACKEND`` as ipykernel does before any cell, so matplotlib reads
the same backend as in a kernel started the usual way. It freezes the collector before
forking (``gc.freeze``): a kernel's collections, and its exit, leave the template's objects
alone (and their memory shared).

A render starts one template, before its workers fork, and each worker connects to it: the
process that starts a template holds one end of a socket pair (``SOCK_SEQPACKET``), which
the workers it forks inherit; a process connects by sending, over it, one end of a socket
pair of its own, and then talks to the template over that private pair alone (one JSON
message per request, the kernel's standard streams passed as file descriptors), the way
jupyter_client's ``LocalProvisioner`` talks to a ``Popen``: :class:`ForkedKernel` has the
``Popen`` methods the provisioner calls. So the imports are done once per render, not once
per worker, and while the render's own imports run. A template refuses a kernel whose
environment is not its own (numpy and ipykernel read theirs when imported); the caller then
starts the kernel the usual way. When a process goes (its private pair closes), the template
stops that process's kernels; when no process can connect any more (every copy of the first
pair is closed: the render and its workers are gone), it exits; a kernel exits when its
template does (ipykernel watches its parent).

Run as ``python -m metaanalysis.kernelfork FD MODULE...`` by :class:`Template`, never by hand.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import threading

#: What a template imports before it is asked for a kernel: what a kernel's start and the
#: site's notes import, by way of the modules that import the rest (IPython, numpy, scipy,
#: pandas, matplotlib). None of them starts a thread (checked at the template's start).
PRELOAD = ("ipykernel.kernelapp", "ipykernel.ipkernel", "ipykernel.zmqshell",
           "ipykernel.debugger", "sqlite3", "pdb", "psutil",  # what the kernel's start imports
           "matplotlib.pyplot", "matplotlib.backends.backend_svg", "pandas", "scipy.optimize",
           "metaanalysis.notes", "metaanalysis.plots", "metaanalysis.figures",
           "metaanalysis.tables", "metaanalysis.rve", "metaanalysis.multilevel",
           "metaanalysis.bias", "metaanalysis.choose", "metaanalysis.citations",
           "metaanalysis.effects", "metaanalysis.judgements", "metaanalysis.prose",
           "bibtexparser.middlewares.names")  # (the last six: what a note's cells import)

#: What ipykernel sets MPLBACKEND to before the first cell when the user did not set it.
INLINE_BACKEND = "module://matplotlib_inline.backend_inline"

#: The environment variables that differ from one kernel to the next and that the kernel reads
#: when it starts, never when a module is imported: a template serves kernels whose
#: environment differs from its own in these only. (ipykernel reads JPY_PARENT_PID when
#: imported; a forked kernel is told its parent, the template, by an argument instead.)
PER_KERNEL = ("JPY_PARENT_PID", "JPY_SESSION_NAME")

#: The largest request (a kernel's environment is most of it).
_MESSAGE = 1 << 20


def _send(sock: socket.socket, message: dict, fds=()) -> None:
    data = json.dumps(message).encode()
    if fds:
        socket.send_fds(sock, [data], list(fds))
    else:
        sock.send(data)


def _receive(sock: socket.socket, maxfds: int = 0) -> tuple[dict | None, list[int]]:
    try:
        data, fds, _, _ = socket.recv_fds(sock, _MESSAGE, maxfds)
    except OSError:
        return None, []
    return (json.loads(data) if data else None), fds


def _differences(env: dict, own: dict) -> list[str]:
    """The variables (other than :data:`PER_KERNEL`) in which ``env`` differs from ``own``."""
    return sorted(k for k in set(env) | set(own)
                  if k not in PER_KERNEL and env.get(k) != own.get(k))


# --- the template's side ------------------------------------------------------------------

def _serve(listener: socket.socket, own_env: dict, hello: dict) -> dict | None:
    """Answer the requests of every process that connects, until none can any more. Each
    connection gets ``hello`` (the template's pid and launcher, or why it cannot serve).
    Returns only in a forked kernel, with its request; the template itself gets None once
    every kernel is stopped."""
    import select

    clients: dict[socket.socket, set[int]] = {}  # each connection and the kernels it started

    def gone(sock):  # a process gone: so are its kernels (each leads its session)
        _stop(clients.pop(sock))
        sock.close()

    while True:
        readable, _, _ = select.select([listener, *clients], [], [])
        for sock in readable:
            if sock is listener:
                message, fds = _receive(listener, maxfds=1)
                if message is None:  # every process that could connect is gone
                    for client in list(clients):
                        gone(client)
                    return None
                if message.get("op") != "connect" or len(fds) != 1:
                    for fd in fds:
                        os.close(fd)
                    continue
                client = socket.socket(fileno=fds[0])
                try:
                    _send(client, hello)
                except OSError:
                    client.close()
                    continue
                if "ready" in hello:
                    clients[client] = set()
                else:
                    client.close()
                continue
            request, fds = _receive(sock, maxfds=3)
            if request is None:
                gone(sock)
                continue
            kernels = clients[sock]
            if request.get("op") == "start":
                differs = _differences(request["env"], own_env)
                if differs or len(fds) != 3:
                    for fd in fds:
                        os.close(fd)
                    _send(sock, {"refused": "its environment differs in " + ", ".join(differs)
                                 if differs else "three standard streams were not given"})
                    continue
                sys.stdout.flush()
                sys.stderr.flush()
                pid = os.fork()
                if pid == 0:
                    listener.close()
                    for client in clients:
                        if client is not sock:
                            client.close()
                    _become_kernel(sock, request, fds)
                    return request
                for fd in fds:
                    os.close(fd)
                kernels.add(pid)
                _send(sock, {"pid": pid})
            elif request.get("op") == "poll":
                pid = request["pid"]
                code = None
                if pid in kernels:
                    done, status = os.waitpid(pid, os.WNOHANG)
                    if done:
                        kernels.discard(pid)
                        code = os.waitstatus_to_exitcode(status)
                else:
                    code = -1  # not one of this process's kernels (or already reported)
                _send(sock, {"returncode": code})


def _stop(kernels) -> None:
    for pid in kernels:
        try:
            os.killpg(pid, signal.SIGKILL)
        except OSError:
            pass
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass


def _become_kernel(sock: socket.socket, request: dict, fds: list[int]) -> None:
    """In the forked child: take the kernel's session, streams, folder and environment."""
    sock.close()
    os.setsid()  # as jupyter_client's launcher does (start_new_session)
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
    for fd in fds:  # the template started with its standard streams and its socket only
        if fd > 2:  # (Popen closes the rest): what its imports opened is the kernel's too
            os.close(fd)
    os.chdir(request["cwd"])
    # the environment is the template's, which differs from the request's in the per-kernel
    # variables only, and holds what its imports set
    for name in PER_KERNEL:
        if name in request["env"]:
            os.environ[name] = request["env"][name]
        else:
            os.environ.pop(name, None)
    numpy = sys.modules.get("numpy")
    if numpy is not None:  # a new process seeds numpy's global generator from the system
        numpy.random.seed()
    sys.argv = [request["launcher"], *request["args"]]


def main(argv: list[str]) -> int:
    fd, modules = int(argv[0]), argv[1:]
    sock = socket.socket(fileno=fd)
    # as ipykernel_launcher: the folder it was started from is not an import path
    if sys.path and (sys.path[0] in ("", os.getcwd())):
        del sys.path[0]
    own_env = dict(os.environ)
    # A note's kernel has no debugger: ipykernel imports debugpy when it can (0.2-0.3 s of
    # the template's imports) only to offer a frontend's debugger, and a render has no
    # frontend. Without it, ipykernel says so in its kernel_info ("debugger" not among its
    # features), which reaches no note.
    sys.modules.setdefault("debugpy", None)  # an import of debugpy raises ImportError
    if not os.environ.get("MPLBACKEND"):  # ipykernel's own test, before any cell
        os.environ["MPLBACKEND"] = INLINE_BACKEND
    import importlib
    import importlib.util

    try:
        for name in modules:
            importlib.import_module(name)
        hello = {"ready": os.getpid(),
                 "launcher": importlib.util.find_spec("ipykernel_launcher").origin}
    except Exception as exc:  # noqa: BLE001 - told to each process, which starts kernels itself
        hello = {"failed": f"{type(exc).__name__}: {exc}"}
    if "ready" in hello and threading.active_count() != 1:
        # a fork copies one thread: nothing may run beside it
        hello = {"failed": "the imports started threads: "
                 + ", ".join(t.name for t in threading.enumerate())}
    import gc

    gc.freeze()
    request = _serve(sock, own_env, hello)
    if request is None:
        return 0 if "ready" in hello else 1
    # a forked kernel: what ipykernel_launcher does (IPKernelApp.launch_instance), in this
    # process that has done the imports
    from ipykernel import kernelapp

    app = kernelapp.IPKernelApp.instance()
    try:
        app.initialize()
    except Exception:  # noqa: BLE001 - said on stderr, where the caller reads it
        # a kernel that cannot start (a port jupyter_client chose, taken by another process
        # before the kernel bound it) dies at once, so that its caller sees it die and starts
        # another: ipykernel's exit handler would wait for ever on the sockets already bound
        import traceback

        traceback.print_exc()
        sys.stderr.flush()
        os._exit(1)
    if sys.modules.get("debugpy", False) is None:
        # the kernel has made its choice (ipykernel's debugger module was imported without
        # debugpy): a note's own cell may still import debugpy
        del sys.modules["debugpy"]
    app.start()
    return 0


# --- the worker's side ---------------------------------------------------------------------

class TemplateError(RuntimeError):
    """The template could not be started or stopped answering."""


class ForkedKernel:
    """The kernel process a template forked, with the ``Popen`` methods jupyter_client's
    ``LocalProvisioner`` calls (``poll``, ``wait``, ``send_signal``, ``terminate``,
    ``kill``; ``stdin``, the write end of the kernel's standard input, as ``Popen`` gives)."""

    stdout = stderr = None

    def __init__(self, template: "Template", pid: int, stdin):
        self.template, self.pid, self.stdin = template, pid, stdin
        self.returncode = None

    def poll(self) -> int | None:
        if self.returncode is None:
            self.returncode = self.template.returncode(self.pid)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        import subprocess
        import time

        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(str(self.pid), timeout)
            time.sleep(0.01)
        return self.returncode

    def send_signal(self, signum: int) -> None:
        # the template reaps a kernel only when a poll asks, and the poll records the exit
        # code: until then the pid cannot belong to another process
        if self.returncode is None:
            os.kill(self.pid, signum)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


class Template:
    """A warm template: ``prefix`` is the kernel command's interpreter and its options (what
    comes before ``-m ipykernel_launcher``), ``env`` the kernels' environment. Started by one
    process, it serves that process and the processes it forks afterwards and hands it to
    (:func:`adopt`), each over its own connection. With ``wait`` (the default), the start
    waits for the template's imports and raises :class:`TemplateError` if it cannot serve;
    without, it returns at once, and the first request of each process waits."""

    def __init__(self, prefix: list[str], env: dict, modules=PRELOAD, timeout: float = 120,
                 wait: bool = True):
        import subprocess

        self.prefix, self.env, self.timeout = list(prefix), dict(env), timeout
        self._owner = os.getpid()
        self._connections: dict[int, _Connection] = {}
        try:
            ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        except (AttributeError, OSError) as exc:  # a system without them
            raise TemplateError(f"no socket pair for a template: {exc}") from exc
        try:
            self.process = subprocess.Popen(
                [*prefix, "-m", "metaanalysis.kernelfork", str(theirs.fileno()), *modules],
                pass_fds=[theirs.fileno()], env=self.env, cwd="/",
                stdin=subprocess.DEVNULL, start_new_session=True)
        except OSError as exc:  # the interpreter cannot be started
            ours.close()
            raise TemplateError(f"the template could not start: {exc}") from exc
        finally:
            theirs.close()
        self._listener = ours
        self.pid = self.process.pid
        if wait:
            try:
                self._connection()
            except TemplateError:
                self.close()
                raise

    def _connection(self) -> "_Connection":
        """This process's connection to the template (made at its first request)."""
        pid = os.getpid()
        connection = self._connections.get(pid)
        if connection is None:
            # a forked process keeps none of its parent's connections (their requests and
            # answers are the parent's)
            for other in [p for p in self._connections if p != pid]:
                self._connections.pop(other).sock.close()
            try:
                mine, its = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            except OSError as exc:
                raise TemplateError(f"no socket pair for a template: {exc}") from exc
            try:
                _send(self._listener, {"op": "connect"}, fds=(its.fileno(),))
            except OSError as exc:
                mine.close()
                raise TemplateError(f"the template stopped answering: {exc}") from exc
            finally:
                its.close()
            mine.settimeout(self.timeout)
            hello, _ = _receive(mine)
            mine.settimeout(None)
            if not hello or "ready" not in hello:
                mine.close()
                raise TemplateError((hello or {}).get("failed", "the template stopped at start"))
            connection = self._connections[pid] = _Connection(mine, hello["launcher"])
        return connection

    def alive(self) -> bool:
        """Whether the template's process runs (asked by any process it serves)."""
        if os.getpid() == self._owner:
            return self.process.poll() is None
        try:  # another process cannot wait for it: Popen.poll would say it exited
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass
        return True

    def serves(self, env: dict) -> bool:
        return not _differences(env, self.env)

    def start(self, args: list[str], cwd: str, env: dict) -> ForkedKernel | None:
        """A kernel forked with ``ipykernel_launcher``'s ``args``; None if refused."""
        connection = self._connection()
        read, write = os.pipe()
        reply = {}
        try:
            reply = connection.ask({"op": "start", "launcher": connection.launcher,
                                    "args": [*args, f"--IPKernelApp.parent_handle={self.pid}"],
                                    "cwd": str(cwd), "env": dict(env)},
                                   fds=(read, 1, 2))  # as Popen: this process's fds 1 and 2
        finally:
            os.close(read)
            if "pid" not in reply:  # refused, or the template stopped answering
                os.close(write)
        if "pid" not in reply:
            return None
        return ForkedKernel(self, reply["pid"], os.fdopen(write, "wb"))

    def returncode(self, pid: int) -> int | None:
        try:
            return self._connection().ask({"op": "poll", "pid": pid})["returncode"]
        except TemplateError:  # the template is gone, and its kernels with it
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return -signal.SIGKILL
            except PermissionError:
                pass
            return None

    def close(self) -> None:
        """Stop the template (its kernels stop with it) once every process it serves is
        gone; only in the process that started it."""
        if os.getpid() != self._owner:
            return
        for connection in self._connections.values():
            connection.sock.close()
        self._connections.clear()
        self._listener.close()
        try:
            self.process.wait(timeout=10)
        except Exception:  # noqa: BLE001 - it is stopped below
            self.process.kill()
            self.process.wait()


class _Connection:
    """One process's private socket pair to the template, and the launcher it was told."""

    def __init__(self, sock: socket.socket, launcher: str):
        self.sock, self.launcher, self._lock = sock, launcher, threading.Lock()

    def ask(self, message: dict, fds=()) -> dict:
        with self._lock:
            try:
                _send(self.sock, message, fds)
                reply, _ = _receive(self.sock)
            except OSError as exc:
                raise TemplateError(f"the template stopped answering: {exc}") from exc
        if reply is None:
            raise TemplateError("the template stopped answering")
        return reply


def kernel_command_parts(cmd: list[str]) -> tuple[list[str], list[str]] | None:
    """(interpreter and options, launcher arguments) of an ``ipykernel_launcher`` command, the
    only kind a template can fork; None for any other kernel command."""
    for i in range(len(cmd) - 1):
        if cmd[i] == "-m" and cmd[i + 1] == "ipykernel_launcher":
            return cmd[:i], cmd[i + 2:]
    return None


_TEMPLATES: dict[tuple, Template] = {}
#: Why a template could not start, per process, interpreter and environment: not tried again
#: for every note (a failure found after the imports would cost each note their time).
_FAILED: dict[tuple, str] = {}


def adopt(template: Template) -> None:
    """Serve this process's kernels from ``template``, started by the process it was forked
    from (a render's workers, given the render's template): :func:`shared_template` then
    returns it for its interpreter and any environment it serves."""
    _TEMPLATES[(os.getpid(), tuple(template.prefix))] = template


def shared_template(prefix: list[str], env: dict) -> Template:
    """This process's template for kernels of this interpreter and environment: the one it
    adopted (:func:`adopt`), or its own, started at the first call (a forked process does not
    use its parent's unless it adopts it). Raises :class:`TemplateError` if it cannot start
    (once tried)."""
    key = (os.getpid(), tuple(prefix))
    failed = (key, tuple(sorted((k, v) for k, v in env.items() if k not in PER_KERNEL)))
    if failed in _FAILED:
        raise TemplateError(_FAILED[failed])
    template = _TEMPLATES.get(key)
    if template is not None and (not template.alive() or not template.serves(env)):
        template.close()
        template = None
    if template is None:
        try:
            template = _TEMPLATES[key] = Template(prefix, dict(env))
        except TemplateError as exc:
            _FAILED[failed] = str(exc)
            raise
        import multiprocessing.util

        multiprocessing.util.Finalize(template, template.close, exitpriority=10)
    return template


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
