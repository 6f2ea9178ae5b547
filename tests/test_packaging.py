"""Package layout: probes/ and exporter/ are top-level folders every tool sees as lakeprobe.*.

Two committed relative symlinks (lakeprobe/probes, lakeprobe/exporter) make one ordinary package
tree for setuptools' discovery, mypy, IDEs and import-graph tools; these checks keep it that way
without building a wheel.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import ModuleType

import pytest

import lakeprobe.exporter
import lakeprobe.probes

ROOT = Path(__file__).resolve().parent.parent


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
