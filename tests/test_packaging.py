"""Package layout, and the built wheel working outside a checkout.

probes/ and exporter/ are top-level folders every tool sees as lakeprobe.*: two committed
relative symlinks (lakeprobe/probes, lakeprobe/exporter) make one ordinary package tree for
setuptools' discovery, mypy, IDEs and import-graph tools. The alert rules and dashboards ship
as package data the same way (lakeprobe/data/alerting, lakeprobe/data/dashboards). The wheel
tests build the real wheel offline, install it into a fresh venv and run `lakeprobe` from a
directory outside the checkout.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
import urllib.request
import venv
import zipfile
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from conftest import need_binaries

import lakeprobe.exporter
import lakeprobe.probes
from lakeprobe.data import data_path
from lakeprobe.lake import free_ports
from lakeprobe.lake.monitoring import MONITORING_BINARIES

ROOT = Path(__file__).resolve().parent.parent
# What the wheel is built from: the package and the folders its symlinks point at.
SOURCES = ("pyproject.toml", "README.md", "lakeprobe", "probes", "exporter", "alerting")
DATA = {"alerting": ROOT / "alerting", "dashboards": ROOT / "grafana" / "json"}
BUILD_BOUND = 120.0  # s: build and install take about 2 s on an idle machine
DEMO_BOUND = 60.0  # s: the one-site lake, Prometheus and the daemon are up in seconds
STOP_BOUND = 30.0


@pytest.mark.parametrize(
    ("link", "target"),
    [("lakeprobe/probes", "../probes"), ("lakeprobe/exporter", "../exporter")],
)
def test_subpackage_symlink_is_relative(link: str, target: str) -> None:
    """Each symlink is relative, so a clone anywhere (and a wheel build) resolves it."""
    path = ROOT / link
    assert path.is_symlink()
    assert os.readlink(path) == target
    assert path.resolve() == (ROOT / target.removeprefix("../")).resolve()


@pytest.mark.parametrize(
    ("package", "folder"), [(lakeprobe.probes, "probes"), (lakeprobe.exporter, "exporter")]
)
def test_subpackage_imports_from_top_level_folder(package: ModuleType, folder: str) -> None:
    """`import lakeprobe.probes` loads the top-level probes/ folder, not a copy of it."""
    (path,) = package.__path__
    assert Path(path).resolve() == (ROOT / folder).resolve()


@pytest.mark.parametrize("folder", ["probes", "exporter"])
def test_no_symlink_inside_linked_folder(folder: str) -> None:
    """No symlink below probes/ or exporter/: one pointing back up would be a loop that package
    discovery follows into a wheel of endless nested copies."""
    links = [p for p in (ROOT / folder).rglob("*") if p.is_symlink()]
    assert links == []


@pytest.mark.parametrize(
    ("link", "target"), [("alerting", "../../alerting"), ("dashboards", "../../grafana/json")]
)
def test_data_symlink_is_relative(link: str, target: str) -> None:
    """The package data are the top-level folders themselves, through relative symlinks."""
    path = ROOT / "lakeprobe" / "data" / link
    assert os.readlink(path) == target
    assert data_path(link) == path
    assert data_path(link).resolve() == (path.parent / target).resolve()


def _copy_sources(destination: Path) -> Path:
    """The files the wheel is built from, symlinks kept: setuptools writes build/ and
    *.egg-info where it builds, and the checkout is shared."""
    skip = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build")
    destination.mkdir()
    for name in SOURCES:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, destination / name, symlinks=True, ignore=skip)
        else:
            shutil.copy2(source, destination / name)
    shutil.copytree(ROOT / "grafana" / "json", destination / "grafana" / "json")
    return destination


def _pip(command: str, *args: str, python: Path | None = None) -> None:
    """This interpreter's pip (for `python`'s environment if given), offline: nothing comes
    from an index."""
    target = ["--python", str(python)] if python else []
    done = subprocess.run(
        [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q", *target, command,
         "--no-index", *args],
        capture_output=True, text=True, timeout=BUILD_BOUND, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel, built from a copy of the checkout without build isolation (the backend is
    in the test venv: the `test` extra)."""
    base = tmp_path_factory.mktemp("wheel")
    source = _copy_sources(base / "src")
    _pip("wheel", "--no-deps", "--no-build-isolation", "-w", str(base / "dist"), str(source))
    (built,) = (base / "dist").glob("lakeprobe-*.whl")
    return built


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv (Debian's XRootD and gfal2 bindings through --system-site-packages) with
    the wheel installed; its bin/ folder. The dependencies are importable from this test
    venv's site-packages through a .pth line, added after the install: offline, in a second,
    and a plain path line does not run the checkout's editable-install hook."""
    env_dir = tmp_path_factory.mktemp("venv") / "venv"
    venv.EnvBuilder(system_site_packages=True, with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    _pip("install", "--no-deps", str(wheel), python=python)
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, timeout=30, check=True,
    ).stdout.strip()  # fmt: skip
    ours = {sysconfig.get_paths()[key] for key in ("purelib", "platlib")}
    (Path(site) / "lakeprobe-test-deps.pth").write_text("".join(f"{p}\n" for p in sorted(ours)))
    return env_dir / "bin"


def _run(bin_dir: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """A command of the venv, from `cwd`, seeing nothing of the checkout."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    return subprocess.run(
        [str(bin_dir / args[0]), *args[1:]],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def test_wheel_holds_the_data_files(wheel: Path) -> None:
    """Every alert file and dashboard is in the wheel as a real file with the same bytes as
    the top-level folder's, under lakeprobe/data/."""
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        for folder, source in DATA.items():
            files = sorted(p for p in source.iterdir() if p.suffix in (".yaml", ".json"))
            assert files
            for path in files:
                name = f"lakeprobe/data/{folder}/{path.name}"
                assert name in names
                assert archive.read(name) == path.read_bytes(), name
        assert "lakeprobe/probes/registry.py" in names
        assert "lakeprobe/exporter/exposition.py" in names


def test_installed_package_is_the_wheel(installed: Path, tmp_path: Path) -> None:
    """The venv imports lakeprobe from its own site-packages, data included, not from the
    checkout."""
    code = "import lakeprobe.data as d; print(d.data_path('alerting', 'lakeprobe-rules.yaml'))"
    done = _run(installed, tmp_path, "python", "-c", code)
    assert done.returncode == 0, done.stderr
    rules = Path(done.stdout.strip())
    assert rules.is_file()
    assert rules.is_relative_to(installed.parent)
    assert not rules.is_symlink()


def test_installed_check_config(installed: Path, tmp_path: Path) -> None:
    """`lakeprobe check-config` of the installed wheel, outside the checkout: the shipped
    sample passes (exit 0); a bad config exits 2 naming the YAML path of each error."""
    sample = tmp_path / "local-lake.yaml"
    shutil.copy(ROOT / "config" / "local-lake.yaml", sample)
    done = _run(installed, tmp_path, "lakeprobe", "check-config", str(sample))
    assert done.returncode == 0, done.stderr
    assert re.match(rf"{re.escape(str(sample))}: OK: 2 sites, \d+ endpoints", done.stdout)
    bad = tmp_path / "bad.yaml"
    bad.write_text(sample.read_text().replace("server:\n", "server:\n  colour: blue\n", 1))
    done = _run(installed, tmp_path, "lakeprobe", "check-config", str(bad))
    assert done.returncode == 2
    assert done.stderr.strip() == f"{bad}: server.colour: unknown key"


def _get(url: str) -> bytes | None:
    try:
        with urllib.request.urlopen(url, timeout=5) as reply:
            return bytes(reply.read())
    except OSError:
        return None


def _loaded_rules(prometheus: str) -> set[str]:
    """Names of the alerting rules Prometheus has loaded."""
    body = _get(f"{prometheus}/api/v1/rules?type=alert")
    groups = json.loads(body)["data"]["groups"] if body else []
    return {rule["name"] for group in groups for rule in group["rules"]}


def _shipped_alerts() -> set[str]:
    import yaml

    groups = yaml.safe_load((ROOT / "alerting" / "lakeprobe-rules.yaml").read_text())["groups"]
    return {rule["alert"] for group in groups for rule in group["rules"] if "alert" in rule}


@pytest.fixture
def demo_log(
    installed: Path, tmp_path: Path
) -> Iterator[tuple[subprocess.Popen[bytes], Path, str]]:
    """`lakeprobe demo --monitoring` of the installed wheel, run from outside the checkout;
    stopped with SIGINT (Ctrl-C) at teardown, killed only past STOP_BOUND."""
    need_binaries(*MONITORING_BINARIES)
    listen = f"127.0.0.1:{free_ports(1)[0]}"
    log = tmp_path / "demo.log"
    command = [str(installed / "lakeprobe"), "demo", "--sites", "1", "--token-sites", "none"]
    command += ["--monitoring", "--interval", "5", "--listen", listen, "--dir", str(tmp_path / "l")]
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    with log.open("w") as out:
        demo = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=out, stderr=out)
    try:
        yield demo, log, listen
    finally:
        if demo.poll() is None:
            demo.send_signal(signal.SIGINT)
            try:
                demo.wait(STOP_BOUND)
            except subprocess.TimeoutExpired:
                demo.kill()
                demo.wait(10)


def test_installed_demo_serves_metrics_with_the_shipped_rules(
    installed: Path, demo_log: tuple[subprocess.Popen[bytes], Path, str]
) -> None:
    """The installed `lakeprobe demo --monitoring`, outside the checkout: /metrics is
    served, Prometheus loads every alert of the shipped rules from the installed package
    data, and Ctrl-C stops it all with exit code 0 within a bounded time."""
    demo, log, listen = demo_log
    deadline = time.monotonic() + DEMO_BOUND
    banner = re.compile(r"^prometheus: (http://\S+)/alerts \(rules: (.+)\)$", re.MULTILINE)
    while not (found := banner.search(log.read_text())) or not _get(f"http://{listen}/metrics"):
        assert demo.poll() is None, log.read_text()
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.5)
    prometheus, rules = found[1], Path(found[2])
    assert rules.is_relative_to(installed.parent), rules
    assert b"\nlakeprobe_build_info{" in (_get(f"http://{listen}/metrics") or b"")
    expected = _shipped_alerts()
    assert len(expected) > 10
    while _loaded_rules(prometheus) != expected:
        assert time.monotonic() < deadline, (_loaded_rules(prometheus) ^ expected, log.read_text())
        time.sleep(0.5)
    demo.send_signal(signal.SIGINT)
    assert demo.wait(STOP_BOUND) == 0, log.read_text()
