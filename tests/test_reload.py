"""Reloads are atomic: any failure keeps the running schedule whole and reports it."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from lakeprobe.config import load_config
from lakeprobe.service import daemon as daemon_module
from lakeprobe.service.daemon import Daemon


def _config(sites: int, cap: int = 32) -> dict[str, object]:
    """Endpoints on a closed loopback port, probed rarely: the schedule is what matters."""
    return {
        "server": {"listen": "127.0.0.1:1", "probe_host": "before"},
        "defaults": {"interval": "1h", "timeout": "10s", "max_concurrent_runs": cap},
        "sites": [
            {"name": f"S{i}", "endpoints": [{"name": "web", "url": f"http://127.0.0.{i + 1}:9"}]}
            for i in range(sites)
        ],
        "probes": [{"name": "webdav", "type": "webdav"}],
    }


HASH = "$2b$04$rPP.9NyAEHx91FZxeROCJ.9BqDlW6NzeTFLEkPH6iZDVi9xzbunSq"  # bcrypt of "x", cost 4


def _write(path: Path, data: object) -> None:
    path.write_text(yaml.safe_dump(data))


def _gauge(daemon: Daemon) -> float | None:
    return daemon.registry.get_sample_value("lakeprobe_config_last_reload_successful")


async def test_a_failing_reload_keeps_the_schedule_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reload failing half-way (here: planning raises) changes nothing and drops the gauge;
    a later good reload applies fully, new caps and probe_host included."""
    path = tmp_path / "lakeprobe.yaml"
    _write(path, _config(3))
    daemon = Daemon(path, load_config(path))
    daemon.start()
    try:
        _write(path, _config(1))

        def broken(*_: object) -> list[object]:
            raise RuntimeError("planning blew up")

        monkeypatch.setattr(daemon_module, "build_plan", broken)
        problems = await daemon.reload_async()
        assert problems == ["reload failed: RuntimeError: planning blew up"]
        assert _gauge(daemon) == 0
        assert len(daemon.store) == 3
        assert len(daemon.config.sites) == 3
        monkeypatch.undo()

        data = _config(2, cap=5)
        data["server"]["probe_host"] = "after"  # type: ignore[index]
        _write(path, data)
        assert await daemon.reload_async() == []
        assert _gauge(daemon) == 1
        assert len(daemon.store) == 2
        assert daemon.scheduler.admission.capacity == 5
        assert daemon.scheduler.probe_host == "after"
    finally:
        await daemon.stop()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (b"sites: [\xe9]\n", "not UTF-8"),
        (b"defaults: {interval: .inf}\n", "defaults.interval"),
        (b"defaults: {interval: 9999999999h}\n", "defaults.interval"),
        (b"x: " + b"[" * 5000 + b"]" * 5000 + b"\n", "nest"),
    ],
)
async def test_bad_files_are_rejected_on_reload(tmp_path: Path, text: bytes, expected: str) -> None:
    """Files that are not even config errors in the usual sense are rejected the same way:
    the gauge drops, a message says why, and the old targets keep running."""
    path = tmp_path / "lakeprobe.yaml"
    _write(path, _config(2))
    daemon = Daemon(path, load_config(path))
    daemon.start()
    try:
        path.write_bytes(text)
        problems = await daemon.reload_async()
        assert any(expected in p for p in problems), problems
        assert _gauge(daemon) == 0
        assert len(daemon.store) == 2
    finally:
        await daemon.stop()


async def test_restart_only_settings_are_named_until_a_restart(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A reload that changes settings only a restart applies (listen, state_dir,
    keepalive_timeout, the web config file's content) names them, with their key paths, on
    each reload until a restart; other changes are applied without that warning."""
    path, web = tmp_path / "lakeprobe.yaml", tmp_path / "web.yml"
    web.write_text("basic_auth_users: {}\n")
    data = _config(1)
    data["server"]["web_config_file"] = str(web)  # type: ignore[index]
    _write(path, data)
    daemon = Daemon(path, load_config(path))
    daemon.start()
    try:
        data["server"]["probe_host"] = "elsewhere"  # type: ignore[index]
        _write(path, data)
        assert await daemon.reload_async() == []
        assert "after a restart" not in caplog.text
        data["server"].update(listen="127.0.0.1:2", keepalive_timeout=7)  # type: ignore[attr-defined]
        _write(path, data)
        web.write_text(f"basic_auth_users: {{a: '{HASH}'}}\n")
        for _ in range(2):
            caplog.clear()
            assert await daemon.reload_async() == []
            (warning,) = [r.message for r in caplog.records if "after a restart" in r.message]
            assert warning == (
                "server.listen, server.keepalive_timeout, server.web_config_file (or its "
                "content) changed: takes effect only after a restart"
            )
    finally:
        await daemon.stop()
