"""Robustness: a killed render leaves no orphan writing pages, a timeout is one line, a study
that feeds nothing is reported, themes.json is checked, a missing subgroup is a group."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from metaanalysis.execution import _kernel_stderr_filtered
from metaanalysis.render import _clean_stale

REPO = Path(__file__).resolve().parent.parent


def _processes_mentioning(text: str) -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if text in (d / "cmdline").read_bytes().decode(errors="replace"):
                    out.append(int(d.name))
            except OSError:
                pass
    return out


def test_workers_die_with_a_killed_render_and_write_nothing(tmp_path):
    site = tmp_path / "site-killed"
    proc = subprocess.Popen([sys.executable, "-m", "metaanalysis", "render", "autonomy",
                             "--force", "--site", str(site)], cwd=REPO, stderr=subprocess.PIPE,
                            text=True)
    assert "running" in proc.stderr.readline()
    time.sleep(1.0)  # the worker is executing the notebook
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.time() + 10
    while _processes_mentioning(str(site)) and time.time() < deadline:
        time.sleep(0.2)
    assert _processes_mentioning(str(site)) == []
    time.sleep(3)
    assert not (site / "autonomy.html").exists()


def test_what_a_killed_render_left_is_cleaned_at_the_next_start(tmp_path):
    site = tmp_path / "site"
    dead = site / ".build" / "staging" / "999999999" / "autonomy"
    dead.mkdir(parents=True)
    (dead / "autonomy.csv").write_text("x")
    live = site / ".build" / "staging" / str(os.getpid())
    live.mkdir()
    (site / ".autonomy.html.999999999.tmp").write_text("half")
    (site / f".autonomy.html.{os.getpid()}.tmp").write_text("being written")
    _clean_stale(site)
    assert not dead.parent.exists() and live.exists()
    assert [p.name for p in site.glob(".*.tmp")] == [f".autonomy.html.{os.getpid()}.tmp"]


def test_a_timeout_is_one_line_not_the_kernels_traceback():
    stderr = """[IPKernelApp] ERROR | Exception in message handler:
Traceback (most recent call last):
  File "/x/ipykernel/kernelbase.py", line 508, in dispatch_shell
    await result
  File "zmq/backend/cython/_zmq.py", line 1339, in zmq.backend.cython._zmq._check_closed
zmq.error.ZMQError: Socket operation on non-socket
Timeout waiting for execute reply (4s).
a line the notebook printed"""
    assert _kernel_stderr_filtered.quiet(stderr) == ["a line the notebook printed"]


def check(*args, cwd=REPO):
    return subprocess.run([sys.executable, "-m", "metaanalysis", "check", *map(str, args)],
                          capture_output=True, text=True, cwd=cwd)


def test_check_warns_when_a_study_feeds_no_outcome_or_lacks_a_characteristic(tmp_path):
    themes = json.loads((REPO / "themes.json").read_text())
    themes["autonomy"]["outcomes"][3]["subgroups"] = ["design", "setting"]
    (tmp_path / "themes.json").write_text(json.dumps(themes))
    (tmp_path / "bibliographies").mkdir()
    bib = tmp_path / "bibliographies" / "autonomy.bib"
    bib.write_bytes((REPO / "tests/data/zotero/betterbibtex.bib").read_bytes())
    run = check(bib, cwd=tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    lines = run.stdout.splitlines()
    # nguyen2021 reports analysis 1.10, which the theme's filter (analysis 1.1) leaves out
    assert any(ln.startswith(f"{bib}:40: nguyen2021: warning: included study feeds none")
               for ln in lines), lines
    # every study of that outcome lacks 'setting'; all have 'design'
    assert sum("setting is missing" in ln for ln in lines) == 2
    assert not any("design is missing" in ln for ln in lines)
    run = check("--theme", "nope", bib, cwd=tmp_path)
    assert run.returncode == 2 and "unknown theme 'nope'" in run.stderr


def test_check_validates_themes_json(tmp_path):
    themes = json.loads((REPO / "themes.json").read_text())
    themes["autonomy"]["outcomes"][0]["favours"] = "up"
    themes["index"] = themes.pop("territories")
    (tmp_path / "themes.json").write_text(json.dumps(themes))
    run = check(REPO / "tests/data/good.bib", cwd=tmp_path)
    assert run.returncode == 1 and "Traceback" not in run.stderr
    assert "themes.json: autonomy.outcomes.0.favours: 'up' is not one of" in run.stdout
    assert "themes.json: index: theme name 'index' is reserved" in run.stdout


def test_a_missing_subgroup_value_is_its_own_group_in_the_forest_plot():
    from metaanalysis.models import rma
    from metaanalysis.plots import forest

    rng = np.random.default_rng(1)
    data = pd.DataFrame({"key": [f"s{i}" for i in range(8)], "yi": rng.normal(0.2, 0.2, 8),
                         "vi": np.full(8, 0.04), "measure": "SMD",
                         "design": ["RCT", "RCT", None, "QES", "QES", float("nan"), "", "RCT"]})
    res = rma(data=data)
    fig = forest(res, subgroup="design", lang="en")
    texts = [t.get_text() for ax in fig.figure.axes for t in ax.texts]
    assert any(t.startswith("not reported (k = 3)") for t in texts), texts
    assert any(t.startswith("RCT (k = 3)") for t in texts) and any(
        t.startswith("QES (k = 2)") for t in texts)
