"""Note kernels forked from a warm template (for :mod:`metaanalysis.kernels`).

A note's kernel spends most of its start importing: IPython and ipykernel, numpy, scipy,
pandas, matplotlib and this library, 1 to 2 s of CPU per note, the same modules for every
note. A *template* is a process that does these imports once, before any notebook is known,
then forks one kernel per note. Each note still runs in its own fresh kernel: a new process,
forked from a template that has run no note, started by ipykernel exactly as
``python -m ipykernel_launcher -f CONNECTION`` starts it (the same interpreter and options,
environment, working folder, arguments and standard streams). The template only imports
modules that do not look at the running IPython when imported (``matplotlib_inline``'s
backend does, so it is left to the kernel); it sets ``MPLBACKEND`` as ipykernel does before
any cell, so matplotlib reads the same backend as in a kernel started the usual way. It
freezes the collector before forking (``gc.freeze``): a kernel's collections, and its exit,
leave the template's objects alone (and their memory shared).

The render's worker talks to its template over a socket pair (``SOCK_SEQPACKET``: one JSON
message per request, the kernel's standard streams passed as file descriptors), the way
jupyter_client's ``LocalProvisioner`` talks to a ``Popen``: :class:`ForkedKernel` has the
``Popen`` methods the provisioner calls. A template refuses a kernel whose environment is not
its own (numpy and ipykernel read theirs when imported); the caller then starts the kernel
the usual way. When the worker goes (its end of the socket closes), the template stops its
kernels and exits; a kernel exits when its template does (ipykernel watches its parent).

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
#: site's notes import, by way of the modules that import the rest (IPython, debugpy, numpy,
#: scipy, pandas, matplotlib). None of them starts a thread (checked at the template's start).
PRELOAD = ("ipykernel.kernelapp", "ipykernel.ipkernel", "ipykernel.zmqshell",
           "ipykernel.debugger", "sqlite3", "pdb", "psutil",  # what the kernel's start imports
           "matplotlib.pyplot", "matplotlib.backends.backend_svg", "pandas", "scipy.optimize",
           "metaanalysis.notes", "metaanalysis.plots", "metaanalysis.figures",
           "metaanalysis.tables", "metaanalysis.rve", "metaanalysis.multilevel",
           "metaanalysis.bias")

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

def _serve(sock: socket.socket, own_env: dict) -> dict | None:
    """Answer the worker's requests until it goes. Returns only in a forked kernel, with its
    request; the template itself gets None once its kernels are stopped."""
    kernels: set[int] = set()
    while True:
        request, fds = _receive(sock, maxfds=3)
        if request is None:
            break
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
                code = -1  # not one of this template's kernels (or already reported)
            _send(sock, {"returncode": code})
    for pid in kernels:  # the worker is gone: so are its kernels (each leads its session)
        try:
            os.killpg(pid, signal.SIGKILL)
        except OSError:
            pass
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass
    return None


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
    # variables only, and holds what its imports set (debugpy sets PYDEVD_USE_FRAME_EVAL,
    # as it does in a kernel started the usual way when ipykernel imports it)
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
    if not os.environ.get("MPLBACKEND"):  # ipykernel's own test, before any cell
        os.environ["MPLBACKEND"] = INLINE_BACKEND
    import importlib
    import importlib.util

    try:
        for name in modules:
            importlib.import_module(name)
        launcher = importlib.util.find_spec("ipykernel_launcher").origin
    except Exception as exc:  # noqa: BLE001 - told to the worker, which starts kernels itself
        _send(sock, {"failed": f"{type(exc).__name__}: {exc}"})
        return 1
    if threading.active_count() != 1:  # a fork copies one thread: nothing may run beside it
        _send(sock, {"failed": "the imports started threads: "
                     + ", ".join(t.name for t in threading.enumerate())})
        return 1
    import gc

    gc.freeze()
    _send(sock, {"ready": os.getpid(), "launcher": launcher})
    request = _serve(sock, own_env)
    if request is None:
        return 0
    # a forked kernel: what ipykernel_launcher does, in this process that has done the imports
    from ipykernel import kernelapp

    kernelapp.launch_new_instance()
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
    comes before ``-m ipykernel_launcher``), ``env`` the kernels' environment."""

    def __init__(self, prefix: list[str], env: dict, modules=PRELOAD, timeout: float = 120):
        import subprocess

        self.env, self._lock = dict(env), threading.Lock()
        self._owner = os.getpid()
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
        self._sock = ours
        ours.settimeout(timeout)
        ready, _ = _receive(ours)
        ours.settimeout(None)
        if not ready or "ready" not in ready:
            self.close()
            raise TemplateError((ready or {}).get("failed", "the template stopped at start"))
        self.pid, self.launcher = ready["ready"], ready["launcher"]

    def _ask(self, message: dict, fds=()) -> dict:
        with self._lock:
            try:
                _send(self._sock, message, fds)
                reply, _ = _receive(self._sock)
            except OSError as exc:
                raise TemplateError(f"the template stopped answering: {exc}") from exc
        if reply is None:
            raise TemplateError("the template stopped answering")
        return reply

    def serves(self, env: dict) -> bool:
        return not _differences(env, self.env)

    def start(self, args: list[str], cwd: str, env: dict) -> ForkedKernel | None:
        """A kernel forked with ``ipykernel_launcher``'s ``args``; None if refused."""
        read, write = os.pipe()
        reply = {}
        try:
            reply = self._ask({"op": "start", "launcher": self.launcher,
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
            return self._ask({"op": "poll", "pid": pid})["returncode"]
        except TemplateError:  # the template is gone, and its kernels with it
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return -signal.SIGKILL
            except PermissionError:
                pass
            return None

    def close(self) -> None:
        """Stop the template (its kernels stop with it); only in the process that started it."""
        if os.getpid() != self._owner:
            return
        self._sock.close()
        try:
            self.process.wait(timeout=10)
        except Exception:  # noqa: BLE001 - it is stopped below
            self.process.kill()
            self.process.wait()


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


def shared_template(prefix: list[str], env: dict) -> Template:
    """This process's template for kernels of this interpreter and environment, started at
    the first call (a forked worker starts its own: a template answers the process that
    started it). Raises :class:`TemplateError` if it cannot start (once tried)."""
    key = (os.getpid(), tuple(prefix))
    failed = (key, tuple(sorted((k, v) for k, v in env.items() if k not in PER_KERNEL)))
    if failed in _FAILED:
        raise TemplateError(_FAILED[failed])
    template = _TEMPLATES.get(key)
    if template is not None and (template.process.poll() is not None
                                 or not template.serves(env)):
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
