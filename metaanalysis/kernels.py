"""The kernels that execute the notes (for :mod:`metaanalysis.execution`): each note runs in
its own fresh kernel, which gets its share of the machine's cores as BLAS threads, forked
from a warm template that has done the kernel's imports once (:mod:`metaanalysis.kernelfork`).

A pool of warm kernels (started, the library imported, before their notebook is known) was
built and measured on the 2-core machine: make notes took 57-59 s with it and 48-53 s
without (issue 15's notes), because on cores that are all busy it only moves the kernels'
start-up into the time of the other note's work; it was not kept. A template saves the
imports' work itself: they are done once per render (:func:`note_template`, started by the
render before its workers fork, each worker connecting to it) instead of once per note.
"""

from __future__ import annotations

import json
import os
import sys

#: The folders of the notes' kernels' Unix sockets, in the temporary folder, are named with
#: this prefix and the pid of the process that started the kernel (a render's worker):
#: :func:`stale_socket_folders` finds those a killed render left.
SOCKETS_PREFIX = "metaanalysis-kernel-"

#: The environment variables that set how many threads a kernel's BLAS and OpenMP use.
THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def stale_folders(prefix: str, alive) -> list:
    """The folders of the temporary folder named ``prefix`` + a pid + ``-...`` whose process
    is no longer ``alive(pid)``: what a render interrupted left (its workers killed with
    their kernels and Chromium, before they could remove their folders)."""
    import glob
    import re
    import tempfile

    folders = []
    for path in glob.glob(os.path.join(tempfile.gettempdir(), prefix + "*")):
        m = re.match(re.escape(prefix) + r"(\d+)-", os.path.basename(path))
        if m and not alive(int(m.group(1))):
            folders.append(path)
    return folders


def stale_socket_folders(alive) -> list:
    """The socket folders of kernels whose starting process is no longer ``alive(pid)``
    (:func:`stale_folders`)."""
    return stale_folders(SOCKETS_PREFIX, alive)


def kernel_threads(workers: int, cores: int | None = None) -> int:
    """The BLAS threads each note's kernel gets: the cores shared among the notes rendered at
    once. With as many kernels as cores, a second BLAS thread per kernel only contends for a
    busy core (OpenBLAS threads spin while they wait): a cold ``make notes`` took 60 s with
    them, 41 s without, on 2 cores, with the same bytes (benchmarks/README.md)."""
    cores = cores or os.cpu_count() or 1
    return max(1, cores // max(1, workers))


def kernel_environment(threads: int | None, env: dict | None = None) -> dict:
    """A note kernel's environment: ``env`` (default: this process's) with ``threads`` BLAS
    and OpenMP threads unless the user set them. The template's must be the kernels' own
    (:func:`note_template`), so both come from here."""
    env = dict(env or os.environ)
    for name in THREAD_VARIABLES:
        if threads:
            env.setdefault(name, str(threads))
    return env


def installed_kernel_argv(name: str) -> list[str] | None:
    """The command of the kernel ``name`` as its ``kernel.json`` gives it, found where
    jupyter_client's KernelSpecManager looks first (the first of jupyter's "kernels" folders
    holding it), without importing jupyter_client (0.13 s, which the template's start would
    wait for: its imports are what the first note waits for); None if no such file (a
    kernel only jupyter_client knows, e.g. ipykernel's own python3: ask it then)."""
    from jupyter_core.paths import jupyter_path

    for folder in jupyter_path("kernels"):
        spec = os.path.join(folder, name, "kernel.json")
        if os.path.isfile(spec):
            try:
                with open(spec, encoding="utf-8") as f:
                    argv = json.load(f)["argv"]
            except (OSError, ValueError, KeyError, TypeError):
                return None
            return [str(a) for a in argv] if isinstance(argv, list) else None
    return None


def note_template(kernel_name: str, threads: int | None):
    """A template (:mod:`metaanalysis.kernelfork`) for the kernels :func:`kernel_manager_class`
    starts with ``threads``: the kernel spec's interpreter and options, as jupyter_client
    makes its command, and the environment it gives the kernel; started, not waited for
    (its imports run while the caller goes on). None where kernels are not forked (another
    system, another kind of kernel, a template that cannot start)."""
    if not sys.platform.startswith("linux"):
        return None
    from .kernelfork import Template, TemplateError, kernel_command_parts

    cmd = installed_kernel_argv(kernel_name)
    if cmd is None:
        from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

        try:
            cmd = list(KernelSpecManager().get_kernel_spec(kernel_name).argv)
        except NoSuchKernel:
            return None
    if cmd and cmd[0] in {"python", f"python{sys.version_info[0]}",
                          "python%i.%i" % sys.version_info[:2]}:
        cmd[0] = sys.executable  # as jupyter_client's KernelManager.format_kernel_cmd
    parts = kernel_command_parts(cmd)
    if parts is None:
        return None
    try:
        return Template(parts[0], kernel_environment(threads), wait=False)
    except TemplateError:
        return None


def kernel_manager_class(threads: int | None, warm: bool = False):
    """The kernel manager a note's kernel is started with: the kernel's environment is this
    process's, plus ``threads`` BLAS and OpenMP threads unless the user set them (passed to
    the kernel's process alone, never set in this one). With ``warm``, the kernel is forked
    from this process's template for its interpreter and environment (started at the first
    kernel), or started the usual way when the template cannot serve it."""
    from jupyter_client.manager import AsyncKernelManager

    if not threads and not warm:
        return AsyncKernelManager

    from traitlets import default

    client = note_kernel_client()

    class NoteKernelManager(AsyncKernelManager):
        @default("client_factory")
        def _note_client(self):
            return client

        # The kernel's sockets: Unix sockets in a folder of its own, not TCP ports, which
        # jupyter_client chooses and the kernel binds a moment later, so that another process
        # (another render, a lab's kernel) can take one in between (seen in CI)
        @default("transport")
        def _unix_sockets(self):
            return "tcp" if sys.platform == "win32" else "ipc"

        @default("ip")
        def _socket_folder(self):
            if self.transport != "ipc":
                return super()._ip_default()
            import tempfile

            self._sockets = tempfile.mkdtemp(prefix=f"{SOCKETS_PREFIX}{os.getpid()}-")
            return os.path.join(self._sockets, "k")

        async def shutdown_kernel(self, now: bool = False, restart: bool = False) -> None:
            try:
                await super().shutdown_kernel(now=now, restart=restart)
            finally:  # (also when the kernel had died: its sockets' folder goes)
                if not restart and getattr(self, "_sockets", None):
                    import shutil

                    shutil.rmtree(self._sockets, ignore_errors=True)

        async def _async_wait(self, pollinterval: float = 0.1) -> None:
            # a note's kernel is killed when its notebook has run (execution.render_one):
            # jupyter_client then polls every 0.1 s for it to be gone, which it is within a
            # few ms (0.115 s a note's stop, 0.026 s polled every 5 ms). jupyter_client's own
            # polling loop (KernelManager._async_wait, 8.x: constraints.txt pins it)
            await super()._async_wait(pollinterval=min(pollinterval, 0.005))

        async def _async_pre_start_kernel(self, **kw):
            env = kernel_environment(threads, kw.pop("env", None))
            return await super()._async_pre_start_kernel(env=env, **kw)

        async def _async_launch_kernel(self, kernel_cmd, **kw):
            # jupyter_client's place to "launch kernel subprocesses differently"; what follows
            # the launch is LocalProvisioner.launch_kernel's own bookkeeping, with the forked
            # kernel as its process
            kernel = _forked(kernel_cmd, kw) if warm else None
            if kernel is None:
                return await super()._async_launch_kernel(kernel_cmd, **kw)
            provisioner = self.provisioner
            provisioner.process, provisioner.pid, provisioner.pgid = kernel, kernel.pid, kernel.pid
            provisioner.cwd = kw.get("cwd") or os.getcwd()
            self._reconcile_connection_info(provisioner.connection_info)

    return NoteKernelManager


def _forked(kernel_cmd: list[str], kw: dict):
    """The kernel forked from this process's template, or None where a template cannot serve
    (another kind of kernel command, options it does not know, a template that failed)."""
    from .kernelfork import TemplateError, kernel_command_parts, shared_template

    if not sys.platform.startswith("linux"):  # fork, SOCK_SEQPACKET: tested on Linux only
        return None
    parts = kernel_command_parts(kernel_cmd)
    known = {"env", "cwd", "stdin", "stdout", "stderr", "independent", "extra_arguments",
             "kernel_id"}
    if parts is None or set(kw) - known or any(kw.get(k) is not None for k in
                                                ("stdin", "stdout", "stderr")) \
            or kw.get("independent"):
        return None
    prefix, args = parts
    env = dict(kw.get("env") or os.environ)
    env["JPY_PARENT_PID"] = str(os.getpid())  # what jupyter_client's launcher adds
    try:
        return shared_template(prefix, env).start(args, kw.get("cwd") or os.getcwd(), env)
    except TemplateError:
        return None


def note_kernel_client():
    """jupyter_client's asynchronous kernel client, but for the wait before the first cell:
    jupyter_client's ends by reading the kernel's output channel until nothing comes for
    0.2 s (its messages about the readiness check, which belong to no cell), a fixed 0.2 s
    per note. This one reads it up to the kernel's "idle" for the readiness check itself, so
    those messages are the ones read, and the first cell starts as soon as they are."""
    import time
    from queue import Empty

    from jupyter_client.asynchronous import AsyncKernelClient

    class NoteKernelClient(AsyncKernelClient):
        async def wait_for_ready(self, timeout: float | None = None) -> None:
            deadline = time.monotonic() + (timeout if timeout is not None else float("inf"))
            while True:
                self.kernel_info()
                try:
                    reply = await self.shell_channel.get_msg(timeout=1)
                except Empty:
                    reply = None
                # the output channel answers within 0.2 s, or it is not connected yet and
                # the check starts again (as jupyter_client's)
                if reply is not None and reply["msg_type"] == "kernel_info_reply" and \
                        await self._idle_after(reply["parent_header"].get("msg_id"), 0.2):
                    self._handle_kernel_info_reply(reply)
                    return
                if not await self._async_is_alive():
                    raise RuntimeError("Kernel died before replying to kernel_info")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"Kernel didn't respond in {timeout:.0f} seconds")

        async def _idle_after(self, request: str | None, patience: float) -> bool:
            """Read the output channel up to the kernel's "idle" after ``request``; False if
            nothing comes for ``patience`` seconds."""
            while True:
                try:
                    msg = await self.iopub_channel.get_msg(timeout=patience)
                except Empty:
                    return False
                if msg["msg_type"] == "status" and \
                        msg["content"].get("execution_state") == "idle" and \
                        msg["parent_header"].get("msg_id") == request:
                    return True

    return NoteKernelClient
