"""Note kernels forked from a warm template: the same kernel as one started the usual way,
a fresh process for each note, nothing left running when the render's worker goes."""

import json
import os
import signal
import subprocess
import sys
import tempfile
import time

import nbformat
import pytest
from nbclient import NotebookClient

from metaanalysis.kernelfork import (PER_KERNEL, Template, TemplateError, kernel_command_parts,
                                     shared_template)
from metaanalysis.kernels import kernel_manager_class
from metaanalysis.execution import _kernel_name

#: What a note's code can see of the process it runs in.
PROBE = r"""
import json, os, signal, stat, sys, threading
import matplotlib
import numpy
print(json.dumps({
    "pid": os.getpid(), "cwd": os.getcwd(), "argv0": sys.argv[0],
    "argv": [a for a in sys.argv[1:] if not a.startswith(("-f", "--IPKernelApp.parent_handle"))
             and not a.endswith(".json")],
    "path": sys.path, "env": {k: v for k, v in os.environ.items() if k not in %r},
    "backend": matplotlib.get_backend(), "rc": repr(sorted(matplotlib.rcParams.items())),
    "main": sys.modules["__main__"].__name__, "session_leader": os.getsid(0) == os.getpid(),
    "sigint": repr(signal.getsignal(signal.SIGINT)), "threads": threading.active_count(),
    "flags": repr(sys.flags), "executable": sys.executable, "stdin": stat.S_ISFIFO(os.fstat(0).st_mode),
    "seen": "left_here" in globals(), "random": repr(numpy.random.random()),
    "debugger": __import__("ipykernel.debugger").debugger._is_debugpy_available,
    "debugpy": __import__("importlib").util.find_spec("debugpy") is not None,
}))
left_here = 1
""" % (PER_KERNEL,)


def probe(tmp_path, warm: bool, runs: int = 1) -> list[dict]:
    """The probe's answers from ``runs`` notes executed one after the other."""
    answers = []
    for _ in range(runs):
        nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(PROBE)])
        NotebookClient(nb, kernel_name=_kernel_name(), timeout=120,
                       kernel_manager_class=kernel_manager_class(1, warm=warm),
                       resources={"metadata": {"path": str(tmp_path)}}).execute()
        text = "".join(o.get("text", "") for o in nb.cells[0].outputs if o.get("name") == "stdout")
        answers.append(json.loads(text))
    return answers


def test_a_forked_kernel_is_the_kernel_a_usual_start_gives(tmp_path):
    """Each note gets a new process (its own pid, nothing from the note before, its own
    random seed), and sees what a kernel started the usual way sees: folder, arguments,
    import path, environment, matplotlib backend and settings, signal handling, session,
    interpreter options, a pipe for standard input. But no debugger: a usual start imports
    debugpy (which sets its PYDEVD_ variables), a forked kernel does not (no frontend),
    though a note's own cell can still import it."""
    usual, = probe(tmp_path, warm=False)
    first, second = probe(tmp_path, warm=True, runs=2)
    assert first["pid"] != second["pid"] != usual["pid"]
    assert not first["seen"] and not second["seen"]
    assert first["random"] != second["random"]
    assert usual["debugger"] and not first["debugger"] and not second["debugger"]
    assert usual["debugpy"] and first["debugpy"] and second["debugpy"]
    usual["env"] = {k: v for k, v in usual["env"].items() if not k.startswith("PYDEVD_")}
    for answer in (first, second):
        for key in ("cwd", "argv0", "argv", "path", "env", "backend", "rc", "main",
                    "session_leader", "sigint", "threads", "flags", "executable", "stdin"):
            assert answer[key] == usual[key], key
    assert usual["backend"] == "module://matplotlib_inline.backend_inline"


def test_a_forked_kernel_draws_figures_and_shows_them_inline(tmp_path):
    """The figure a cell leaves is displayed by the inline backend, as in a usual kernel."""
    source = ("import matplotlib.pyplot as plt\nfig, ax = plt.subplots()\n"
              "ax.plot([1, 2], [3, 4])")
    outputs = []
    for warm in (False, True):
        nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source)])
        NotebookClient(nb, kernel_name=_kernel_name(), timeout=120,
                       kernel_manager_class=kernel_manager_class(1, warm=warm)).execute()
        outputs.append(sorted(k for o in nb.cells[0].outputs for k in o.get("data", {})))
    assert outputs[0] == outputs[1] and "image/png" in outputs[0]


def test_only_ipykernel_launcher_commands_are_forked():
    assert kernel_command_parts(["/py", "-Xfrozen_modules=off", "-m", "ipykernel_launcher",
                                 "-f", "c.json", "--x=1"]) == (
        ["/py", "-Xfrozen_modules=off"], ["-f", "c.json", "--x=1"])
    assert kernel_command_parts(["/py", "-m", "other_kernel", "-f", "c.json"]) is None
    assert kernel_command_parts(["julia", "-i", "kernel.jl", "c.json"]) is None


def test_a_template_refuses_another_environment(tmp_path):
    """numpy and ipykernel read the environment when imported: a template serves only
    kernels whose environment is its own (but for per-kernel variables)."""
    env = dict(os.environ, JPY_PARENT_PID=str(os.getpid()))
    template = Template([sys.executable], env, modules=("json",))
    try:
        assert template.start(["-f", str(tmp_path / "c.json")], str(tmp_path),
                              dict(env, OPENBLAS_NUM_THREADS="7")) is None
        assert template.serves(dict(env, JPY_PARENT_PID="1", JPY_SESSION_NAME="x"))
        assert not template.serves(dict(env, LANG="C.UTF-8x"))
    finally:
        template.close()


def test_a_kernel_the_template_cannot_give_is_started_the_usual_way(monkeypatch):
    import metaanalysis.kernelfork

    def broken(prefix, env):
        raise TemplateError("the template stopped at start")

    monkeypatch.setattr(metaanalysis.kernelfork, "shared_template", broken)
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        "import os, sys; print(os.getppid() == int(os.environ['JPY_PARENT_PID']))")])
    NotebookClient(nb, kernel_name=_kernel_name(), timeout=120,
                   kernel_manager_class=kernel_manager_class(1, warm=True)).execute()
    assert nb.cells[0].outputs[0]["text"].strip() == "True"


def test_a_template_that_cannot_import_or_start_says_why(tmp_path):
    with pytest.raises(TemplateError, match="ModuleNotFoundError: No module named 'no_such_mod"):
        Template([sys.executable], dict(os.environ), modules=("no_such_module_here",))
    with pytest.raises(TemplateError, match="could not start.*no-such-python"):
        Template([str(tmp_path / "no-such-python")], dict(os.environ))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


WORKER = r"""
import os, sys, time, json
from metaanalysis.kernelfork import Template
template = Template([sys.executable], dict(os.environ), modules=("json",))
# a stand-in for a kernel: the template forks it; it runs ipykernel_launcher's arguments,
# which here only wait (a connection file that never comes makes the kernel wait for it)
kernel = template.start(["-f", sys.argv[1]], "/", dict(os.environ))
print(json.dumps({"template": template.process.pid, "kernel": kernel.pid}), flush=True)
time.sleep(1)
os._exit(1)  # the worker dies without closing anything
"""


def test_when_the_worker_dies_its_template_and_kernels_go(tmp_path):
    """A render's worker killed mid-note leaves no template and no kernel running."""
    run = subprocess.run([sys.executable, "-c", WORKER, str(tmp_path / "never.json")],
                         capture_output=True, text=True, timeout=120)
    pids = json.loads(run.stdout.splitlines()[0])
    deadline = time.monotonic() + 30
    while (_alive(pids["template"]) or _alive(pids["kernel"])) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(pids["kernel"]) and not _alive(pids["template"])


def test_a_forked_kernel_is_polled_signalled_and_reaped_like_a_popen(tmp_path):
    env = dict(os.environ, JPY_PARENT_PID=str(os.getpid()))
    template = Template([sys.executable], env, modules=("json",))
    try:
        kernel = template.start(["-f", str(tmp_path / "never.json")], str(tmp_path), env)
        assert kernel.poll() is None
        with pytest.raises(subprocess.TimeoutExpired):
            kernel.wait(timeout=0.2)
        kernel.send_signal(signal.SIGKILL)
        assert kernel.wait(timeout=30) == -signal.SIGKILL
        kernel.kill()  # a kernel already reaped is left alone (its pid may be another's)
        kernel.stdin.close()
    finally:
        template.close()
    assert template.process.poll() is not None


def test_a_template_belongs_to_the_process_that_started_it():
    """A worker forked from a process that has a template starts its own: two processes
    writing to one template's socket would mix their requests."""
    env = dict(os.environ, JPY_PARENT_PID="1")
    first = shared_template([sys.executable], env)
    try:
        assert shared_template([sys.executable], env) is first
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: another template, and closing the parent's does nothing
            try:
                own = shared_template([sys.executable], env)
                first.close()
                os.write(write, str(int(own is not first and own.pid != first.pid)).encode())
                own.close()
            finally:
                os._exit(0)
        os.waitpid(pid, 0)
        assert os.read(read, 10) == b"1"
        assert first.process.poll() is None  # the child's close() left it running
        assert first.returncode(1) == -1  # and it answers: pid 1 is not one of its kernels
    finally:
        first.close()


def test_a_note_from_a_forked_kernel_is_the_same_bytes(tmp_path):
    """The page and open data of a real note, executed in a forked kernel and in a kernel
    started the usual way: byte for byte the same."""
    from test_render import make_project

    from metaanalysis.execution import render_one
    from metaanalysis.fingerprints import plan

    root = make_project(tmp_path, ("territories",))
    files = {}
    for warm in (False, True):
        site = tmp_path / f"site-{warm}"
        job = next(j for j in plan(["territories"], {}, site, root) if j.params.get("lang") == "en")
        outcome = render_one(job, root, 300, 1, warm=warm)
        assert outcome.status == "rendered", outcome.message
        files[warm] = {p.relative_to(site): p.read_bytes() for p in site.rglob("*")
                       if p.is_file() and p.suffix in (".html", ".csv", ".json")
                       and ".build" not in p.parts}
    assert files[True] == files[False] and len(files[True]) == 3


def test_the_wait_before_the_first_cell_reads_the_readiness_messages_and_no_more():
    """The readiness check's own messages are read up to the kernel's "idle" for it (none of
    a cell's output is taken), and a silent output channel means "ask again"."""
    import asyncio
    from queue import Empty
    from types import SimpleNamespace

    from metaanalysis.kernels import note_kernel_client

    def status(state, parent):
        return {"msg_type": "status", "content": {"execution_state": state},
                "parent_header": {"msg_id": parent}}

    class Channel:
        def __init__(self, messages):
            self.messages = list(messages)

        async def get_msg(self, timeout=None):
            if not self.messages:
                raise Empty
            return self.messages.pop(0)

    later = {"msg_type": "stream", "content": {"text": "a cell's"}, "parent_header": {}}
    channel = Channel([status("busy", "check"), status("idle", "earlier check"),
                       status("idle", "check"), later])
    idle_after = note_kernel_client()._idle_after
    assert asyncio.run(idle_after(SimpleNamespace(iopub_channel=channel), "check", 0.2))
    assert channel.messages == [later]
    silent = SimpleNamespace(iopub_channel=Channel([status("busy", "check")]))
    assert not asyncio.run(idle_after(silent, "check", 0.2))


def test_a_template_that_failed_is_not_started_again_for_every_note(tmp_path, monkeypatch):
    import metaanalysis.kernelfork as kf

    starts = []

    class Failing:
        def __init__(self, prefix, env):
            starts.append(prefix)
            raise TemplateError("the imports started threads: x")

    monkeypatch.setattr(kf, "Template", Failing)
    env = dict(os.environ, JPY_PARENT_PID="1")
    for parent in ("1", "2", "3"):  # three notes, the same interpreter and environment
        with pytest.raises(TemplateError, match="started threads"):
            kf.shared_template([str(tmp_path / "py")], dict(env, JPY_PARENT_PID=parent))
    assert len(starts) == 1
    with pytest.raises(TemplateError):  # another environment is tried
        kf.shared_template([str(tmp_path / "py")], dict(env, OTHER="1"))
    assert len(starts) == 2


def test_a_template_that_stopped_answering_leaves_no_open_pipe(tmp_path):
    env = dict(os.environ, JPY_PARENT_PID=str(os.getpid()))
    template = Template([sys.executable], env, modules=("json",))
    try:
        template.process.kill()
        template.process.wait()
        before = sorted(os.listdir("/proc/self/fd"))
        with pytest.raises(TemplateError, match="stopped answering"):
            template.start(["-f", str(tmp_path / "c.json")], str(tmp_path), env)
        assert sorted(os.listdir("/proc/self/fd")) == before
    finally:
        template.close()


def test_one_template_serves_each_process_it_is_handed_to_apart(tmp_path):
    """A render's template serves its forked workers, each over its own connection: a worker
    that dies takes its kernels with it and leaves the template and the others' kernels;
    the template goes once the process that started it closes it."""
    from metaanalysis.kernelfork import adopt

    env = dict(os.environ, JPY_PARENT_PID=str(os.getpid()))
    template = Template([sys.executable], env, modules=("json",), wait=False)
    try:
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # a worker: adopts the template, starts a kernel, dies without cleaning
            try:
                adopt(template)
                own = shared_template([sys.executable], env)
                kernel = own.start(["-f", str(tmp_path / "child.json")], str(tmp_path), env)
                os.write(write, json.dumps([own is template, kernel.pid]).encode())
            finally:
                os._exit(1)
        os.waitpid(pid, 0)
        same, child_kernel = json.loads(os.read(read, 1000))
        assert same  # the worker's kernel came from the render's template
        mine = template.start(["-f", str(tmp_path / "parent.json")], str(tmp_path), env)
        deadline = time.monotonic() + 30
        while _alive(child_kernel) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _alive(child_kernel)  # the worker's kernel went with the worker
        assert template.alive() and mine.poll() is None  # the rest goes on
        assert template.returncode(child_kernel) == -1  # not this process's kernel
    finally:
        template.close()
    assert template.process.poll() is not None
    deadline = time.monotonic() + 30
    while _alive(mine.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(mine.pid)


def test_a_render_forks_its_notes_kernels_from_one_template(tmp_path, monkeypatch):
    """The render starts the kernels' template once, before its workers fork, and every
    worker forks its kernels from it (each worker used to start its own)."""
    import metaanalysis.kernelfork as kf
    from test_render import make_project

    from metaanalysis.render import render

    started = tmp_path / "templates.txt"
    original = kf.Template.__init__

    def counted(self, *args, **kwargs):
        with open(started, "a") as f:  # written by whichever process starts one
            f.write(f"{os.getpid()}\n")
        original(self, *args, **kwargs)

    monkeypatch.setattr(kf.Template, "__init__", counted)
    root = make_project(tmp_path, ("territories",))
    outcomes = render(root=root, site=tmp_path / "site", jobs=2, progress=lambda m: None)
    assert [o.status for o in outcomes] == ["rendered", "rendered"], outcomes
    assert started.read_text().split() == [str(os.getpid())]


def test_a_forked_kernel_whose_port_is_taken_dies_at_once(tmp_path):
    """Over TCP, jupyter_client chooses a kernel's ports, the kernel binds them: another
    process can take one in between (seen in CI). The kernel then failed in ipykernel's start
    and hung in its exit handler, so the caller waited 60 s for an answer before giving up;
    it now dies at once, saying why (the render starts another: execution.PORT_TAKEN). (The
    notes' kernels use Unix sockets of their own now: the next test.)"""
    import asyncio
    import socket

    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    try:
        async def start():
            km = kernel_manager_class(1, warm=True)(  # (TCP, no port cache: the port given)
                kernel_name=_kernel_name(), transport="tcp", cache_ports=False,
                iopub_port=taken.getsockname()[1])
            await km.start_kernel(stderr=None)
            deadline = time.monotonic() + 30
            while await km.is_alive() and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            alive = await km.is_alive()
            if alive:
                await km.shutdown_kernel(now=True)
            return alive, time.monotonic() - deadline + 30

        alive, seconds = asyncio.run(start())
    finally:
        taken.close()
    assert not alive and seconds < 30


def test_a_notes_kernel_talks_over_unix_sockets_of_its_own(tmp_path):
    """No TCP port to lose to another process between jupyter_client's choice and the
    kernel's bind: the notes' kernels use Unix sockets in a folder made for each kernel, and
    the folder goes with the kernel."""
    import asyncio
    import glob

    async def run():
        km = kernel_manager_class(1, warm=True)(kernel_name=_kernel_name())
        await km.start_kernel()
        kc = km.client()
        kc.start_channels()
        await kc.wait_for_ready(timeout=60)
        info = km.get_connection_info()
        sockets = sorted(glob.glob(info["ip"] + "-*"))
        kc.stop_channels()
        await km.shutdown_kernel()
        return info, sockets

    before = set(glob.glob(os.path.join(tempfile.gettempdir(), "metaanalysis-kernel-*")))
    info, sockets = asyncio.run(run())
    assert info["transport"] == "ipc" and len(sockets) == 5
    assert os.path.basename(os.path.dirname(info["ip"])).startswith("metaanalysis-kernel-")
    assert set(glob.glob(os.path.join(tempfile.gettempdir(), "metaanalysis-kernel-*"))) == before


@pytest.mark.parametrize("kind", ["sockets", "chromium profiles"])
def test_the_folders_a_killed_render_left_are_found(tmp_path, kind):
    """A render interrupted (Ctrl-C) kills its workers with their kernels and Chromium: their
    socket folders and Chromium profiles stay in the temporary folder until the next render
    removes them (render's _clean_stale); a live process's are kept (a render beside
    another keeps the other's)."""
    from metaanalysis import kernels, pdf

    prefix, stale = {"sockets": (kernels.SOCKETS_PREFIX, kernels.stale_socket_folders),
                     "chromium profiles": (pdf.PROFILE_PREFIX, pdf.stale_profiles)}[kind]
    dead, live = 2**22 + 12345, os.getpid()  # (above Linux's default pid_max: no such process)
    made = [tempfile.mkdtemp(prefix=f"{prefix}{pid}-") for pid in (dead, live)]
    try:
        found = stale(lambda pid: pid != dead)
        assert made[0] in found and made[1] not in found
    finally:
        for folder in made:
            os.rmdir(folder)


def test_the_kernels_command_is_found_as_jupyter_client_finds_it(tmp_path, monkeypatch):
    """The template starts before jupyter_client is imported: its kernel's command, read
    from kernel.json, is the one jupyter_client's KernelSpecManager gives (the first of the
    kernels folders holding it), and a kernel.json it cannot read is left to jupyter_client."""
    from jupyter_client.kernelspec import KernelSpecManager

    from metaanalysis.kernels import installed_kernel_argv

    name = _kernel_name()
    if name == "metaanalysis":
        assert installed_kernel_argv(name) == KernelSpecManager().get_kernel_spec(name).argv
    first, second = tmp_path / "first", tmp_path / "second"
    for folder, option in ((first, "-Xfirst"), (second, "-Xsecond")):
        (folder / "kernels" / "k").mkdir(parents=True)
        (folder / "kernels" / "k" / "kernel.json").write_text(json.dumps(
            {"argv": [sys.executable, option, "-m", "ipykernel_launcher", "-f",
                      "{connection_file}"], "display_name": "k", "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", os.pathsep.join([str(first), str(second)]))
    assert installed_kernel_argv("k") == KernelSpecManager().get_kernel_spec("k").argv
    assert installed_kernel_argv("k")[1] == "-Xfirst"
    (first / "kernels" / "k" / "kernel.json").write_text("{not json")
    assert installed_kernel_argv("k") is None
    assert installed_kernel_argv("no-such-kernel") is None
