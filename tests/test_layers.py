"""The import graph has one direction: cli -> service -> exporter/config -> probe families ->
common -> clients -> core -> credentials. No family imports another."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Each probes layer, and the layers (or families) it may import from.
ALLOWED = {
    "credentials": {"credentials"},
    "core": {"core", "credentials"},
    "clients": {"clients", "core", "credentials"},
    "common": {"common", "clients", "core", "credentials"},
    "storage": {"storage", "common", "clients", "core", "credentials"},
    "transfer": {"transfer", "common", "clients", "core", "credentials"},
    "authz": {"authz", "common", "clients", "core", "credentials"},
    "tape": {"tape", "common", "clients", "core", "credentials"},
    "integrity": {"integrity", "common", "clients", "core", "credentials"},
    "network": {"network", "common", "clients", "core", "credentials"},
}


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
        elif isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
    return names


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_probe_layers_import_only_downwards(layer: str) -> None:
    """A module of a probes layer imports only its own layer and the layers below it; the
    probes never import the config, the service, the exporter or the CLI."""
    wrong = []
    for path in sorted((ROOT / "probes" / layer).glob("*.py")):
        for name in _imports(path):
            parts = name.split(".")
            if parts[:2] != ["lakeprobe", "probes"]:
                if parts[0] == "lakeprobe":
                    wrong.append(f"{path.name}: {name}")
                continue
            if len(parts) > 2 and parts[2] in ALLOWED and parts[2] not in ALLOWED[layer]:
                wrong.append(f"{path.name}: {name}")
            if len(parts) > 2 and parts[2] == "registry":
                wrong.append(f"{path.name}: {name}")
    assert wrong == []


def test_exporter_and_config_stay_below_the_service() -> None:
    """The results store, the exposition and the config never import the daemon's service
    package or the CLI."""
    wrong = [
        f"{path.relative_to(ROOT)}: {name}"
        for folder in (ROOT / "exporter", ROOT / "lakeprobe" / "config")
        for path in sorted(folder.glob("*.py"))
        for name in _imports(path)
        if name.startswith(("lakeprobe.service", "lakeprobe.cli"))
    ]
    assert wrong == []
