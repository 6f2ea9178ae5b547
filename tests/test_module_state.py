"""Probe modules hold no mutable state of their own: what outlives a run belongs to the daemon
(probes/core/state.py, probes/core/resources.py). Checked on the source, and the resources
are shown to be per owner."""

from __future__ import annotations

import ast
import ssl
from pathlib import Path

from lakeprobe.lake.pki import make_test_pki
from lakeprobe.probes.core.resources import Notices, ProbeResources
from lakeprobe.probes.credentials.tls import client_ssl_context

ROOT = Path(__file__).resolve().parents[1]
MUTABLE_CALLS = {
    *("set", "dict", "list", "defaultdict", "deque", "OrderedDict", "Counter"),
    *("ThreadPoolExecutor", "Lock", "RLock", "Event", "WeakSet", "WeakValueDictionary", "local"),
}
MUTABLE_LITERALS = (ast.List, ast.Dict, ast.Set, ast.ListComp, ast.DictComp, ast.SetComp)
# Module-level state kept on purpose, and why.
ALLOWED = {
    # The log scrubber: logging handlers and C-library stderr are process-wide, so the values
    # to mask are too; each value lives only as long as a Secret holds it (plus a linger).
    "probes/credentials/secrets.py:_KNOWN",
    # The registry imports each probe module on first lookup (a `lakeprobe run webdav` loads no
    # XRootD or TPC code): what it keeps are those modules' own PROBE_TYPE constants.
    "probes/registry.py:ENDPOINT_PROBE_TYPES",
    "probes/registry.py:PAIR_PROBE_TYPES",
    "probes/registry.py:PROBE_TYPES",
    # Per thread, whether the (process-wide) garbage collector ran on it since the XRootD
    # leak containment last looked (xrdleak.py): one flag, cleared as it is read.
    "probes/clients/xrdleak.py:_collections",
}
# Memoized functions: pure results of their arguments, or a library imported once.
MEMOIZED = {
    "probes/authz/tokens.py:_unknown_key",  # a throw-away signing key, never a credential
    "probes/clients/curlexchange.py:_system_store",  # the system's trust store paths
    "probes/clients/gfalcopy.py:_gfal2",  # the library, imported and filtered once
    "probes/clients/gfalcopy.py:_bound_xrdcl_copy_init",  # a process-wide XrdCl setting
    "probes/clients/xrdcopy.py:_handler_class",  # a class made on first import of XRootD
    "probes/clients/xrdasync.py:client_module",  # the library, configured once
    "probes/clients/xrdasync.py:raw_client",  # the binding's module under it
    "probes/clients/xrdleak.py:enabled",  # a fact of the binding and CPython versions
    "probes/core/testfiles.py:source_adler32",  # a digest of fixed bytes
    "probes/core/paramspec.py:_adapter",  # a parameter class's validator, built once
    "probes/credentials/tls.py:_context",  # keyed by the CA directory and its mtime
}


def _module_state(path: Path) -> list[str]:
    """`file:name` of each module-level binding of a mutable value, each `global` statement,
    and each memoized function of the module."""
    name = path.relative_to(ROOT).as_posix()
    tree = ast.parse(path.read_text())
    classes = {node.name for node in tree.body if isinstance(node, ast.ClassDef)}
    found = []
    for node in tree.body:
        targets: list[ast.expr] = []
        value: ast.expr | None = None
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets, value = [node.target], node.value
        for target in targets:
            constant = isinstance(target, ast.Name) and target.id.lstrip("_").isupper()
            if isinstance(target, ast.Name) and value and _mutable(value, classes, constant):
                found.append(f"{name}:{target.id}")
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and _memoized(node):
            found.append(f"{name}:{node.name}")
    found += [f"{name}:global {', '.join(n.names)}" for n in ast.walk(tree)
              if isinstance(n, ast.Global)]  # fmt: skip
    return found


def _mutable(value: ast.expr, classes: set[str], constant: bool) -> bool:
    """A table written as a literal under an UPPER_CASE name is a constant by convention
    (PEP 8); any other mutable value, or an instance of the module's own class, is state."""
    if isinstance(value, MUTABLE_LITERALS):
        return not constant
    if isinstance(value, ast.Call):
        called = value.func
        callee = called.attr if isinstance(called, ast.Attribute) else getattr(called, "id", "")
        return callee in MUTABLE_CALLS or callee in classes
    return False


def _memoized(function: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    for decorator in function.decorator_list:
        called = decorator.func if isinstance(decorator, ast.Call) else decorator
        if isinstance(called, ast.Attribute) and called.attr in ("cache", "lru_cache"):
            return True
    return False


def test_probe_modules_hold_no_mutable_state() -> None:
    """No probe module binds a mutable value at module level, declares `global`, or memoizes
    a function, except the listed ones (each with its reason above)."""
    found = {
        item for path in sorted((ROOT / "probes").rglob("*.py")) for item in _module_state(path)
    }
    assert found - ALLOWED - MEMOIZED == set()
    assert found >= ALLOWED | MEMOIZED, "an allowed item is gone: drop it from the list"


def test_the_check_finds_module_state(tmp_path: Path) -> None:
    """The check itself sees each kind of module state."""
    source = tmp_path / "probes" / "sample.py"
    source.parent.mkdir()
    source.write_text(
        "import functools, threading\nclass Registry: ...\n_seen: set[str] = set()\n"
        "_by_key = {}\nTABLE = {1: 2}\n_lock = threading.Lock()\n_registry = Registry()\n"
        "LIMITS = (1, 2)\n"
        "def bump():\n    global _count\n@functools.cache\ndef memo(): ...\n"
    )
    global ROOT
    saved, ROOT = ROOT, tmp_path
    try:
        found = _module_state(source)
    finally:
        ROOT = saved
    assert sorted(found) == sorted(
        ["probes/sample.py:" + name
         for name in ("_seen", "_by_key", "_lock", "_registry", "memo", "global _count")]
    )  # fmt: skip


def test_resources_are_per_owner() -> None:
    """Two owners (two daemons in one process, or a daemon and a CLI run) share nothing: each
    has its own copy threads, OIDC clients and one-time notices."""
    first, second = ProbeResources(), ProbeResources()
    assert first.threads is not second.threads
    assert first.oidc is not second.oidc
    assert first.notices.first("ca-dir:/a")
    assert not first.notices.first("ca-dir:/a")
    assert second.notices.first("ca-dir:/a")
    first.close()
    second.close()


def test_notices_are_thread_safe() -> None:
    """Copy threads may give notices too: of many concurrent askers, exactly one is first."""
    import concurrent.futures

    notices = Notices()
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: notices.first("same"), range(200)))
    assert answers.count(True) == 1


def test_ssl_context_follows_the_ca_directory(tmp_path: Path) -> None:
    """A CA added to the CA directory is trusted by the next context made for it: a long
    running daemon follows CA updates without a restart, and reuses the context otherwise."""
    ca_dir = tmp_path / "certificates"
    ca_dir.mkdir()
    first_ca = make_test_pki(tmp_path / "one").ca_cert
    (ca_dir / "one.pem").write_bytes(first_ca.read_bytes())
    before = client_ssl_context(ca_dir)
    assert client_ssl_context(ca_dir) is before
    second_ca = make_test_pki(tmp_path / "two").ca_cert
    (ca_dir / "two.pem").write_bytes(second_ca.read_bytes())
    after = client_ssl_context(ca_dir)
    assert after is not before
    assert len(after.get_ca_certs()) == len(before.get_ca_certs()) + 1
    assert after.verify_mode is ssl.CERT_REQUIRED
