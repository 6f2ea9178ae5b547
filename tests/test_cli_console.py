"""The console script holds the garbage collector off while a command loads its modules, and
turns it back on (startup objects frozen) before a probe runs or a daemon serves; `main()`
called in-process never touches it (lakeprobe/cli/console.py)."""

from __future__ import annotations

import gc
import subprocess
import sys

from lakeprobe.cli.main import main

# Records whether the collector is on while the job is built and while the probe runs.
_SPY = """
import gc, sys
import lakeprobe.cli.run as run
import lakeprobe.probes.core.runner as runner

build, probe = run._jobs_from_args, runner.run_probe

def spied_build(*args, **kwargs):
    print("build", gc.isenabled(), file=sys.__stderr__)
    return build(*args, **kwargs)

async def spied_probe(*args, **kwargs):
    print("probe", gc.isenabled(), gc.get_freeze_count() > 0, file=sys.__stderr__)
    return await probe(*args, **kwargs)

run._jobs_from_args, runner.run_probe = spied_build, spied_probe
from lakeprobe.cli.console import console
sys.argv = ["lakeprobe", *sys.argv[1:]]
console()
"""


def _console(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _SPY, *argv], capture_output=True, text=True, timeout=60
    )


def test_collector_is_off_while_loading_and_on_for_the_run() -> None:
    # Nothing listens on the discard port: the run fails fast, as CRITICAL.
    done = _console("run", "webdav", "http://127.0.0.1:9/t", "--timeout", "5")
    assert done.returncode == 2, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith(("build", "probe"))]
    assert lines == ["build False", "probe True True"]


def test_other_commands_run_with_the_collector_on() -> None:
    script = (
        "import gc, sys\n"
        "import lakeprobe.cli.main as main\n"
        "listing = main._list\n"
        "def spied(*a):\n"
        "    print('list', gc.isenabled(), file=sys.__stderr__)\n"
        "    return listing(*a)\n"
        "main._list = spied\n"
        "from lakeprobe.cli.console import console\n"
        "sys.argv = ['lakeprobe', 'list']\n"
        "console()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert "list True" in done.stderr.splitlines()


def test_main_in_process_leaves_the_collector_alone() -> None:
    frozen = gc.get_freeze_count()
    assert main(["run", "webdav", "http://127.0.0.1:9/t", "--timeout", "5"]) == 2
    assert gc.isenabled()
    assert gc.get_freeze_count() == frozen
