"""The token-authz compliance cases, modelled on the WLCG JWT compliance suite.

Each case sends one request with one kind of token and expects it allowed or denied. Paths:
- the fixture tree `<test_dir>/lakeprobe-authz-<host>/{a,b,ab}/fixture`, created once with
  the probe's full-scope token and kept (like the TPC source file);
- new, uniquely named test files directly in the test directory for the write cases,
  deleted by the cleanup step.
"""

from __future__ import annotations

import enum
import posixpath
from dataclasses import dataclass

from lakeprobe.probes.core.testfiles import PREFIX, safe_host


class Op(enum.StrEnum):
    READ = "read"  # read the fixture named by `where`
    CREATE = "create"  # write a file that does not exist yet
    OVERWRITE = "overwrite"  # write over the existing victim file
    DELETE = "delete"  # delete the existing victim file


class TokenKind(enum.StrEnum):
    NONE = "none"
    READ = "read"  # storage.read:<base>
    CREATE = "create"  # storage.create:<base>
    MODIFY = "modify"  # storage.read:<base> storage.modify:<base>, as the compliance suite
    MODIFY_ONLY = "modify_only"  # storage.modify:<base>
    PATH_A = "path_a"  # storage.read:<fixtures>/a
    WRONG_AUDIENCE = "wrong_audience"  # storage.read:<base>, another audience
    EXPIRED = "expired"  # storage.read:<base>, never used until it expired
    TAMPERED = "tampered"  # storage.read:<base>, signature altered
    UNKNOWN_ISSUER = "unknown_issuer"  # storage.read:<base>, signed by an untrusted key


@dataclass(frozen=True, slots=True)
class Case:
    name: str
    token: TokenKind
    op: Op
    allow: bool  # the expected verdict
    where: str = "a"  # READ: the fixture directory (a, b or ab)

    @property
    def expectation(self) -> str:
        return "must allow" if self.allow else "must deny"


CASES: tuple[Case, ...] = (
    Case("no_token_read", TokenKind.NONE, Op.READ, allow=False),
    Case("no_token_write", TokenKind.NONE, Op.CREATE, allow=False),
    Case("read_scope_read", TokenKind.READ, Op.READ, allow=True),
    Case("read_scope_write", TokenKind.READ, Op.CREATE, allow=False),
    Case("create_scope_new", TokenKind.CREATE, Op.CREATE, allow=True),
    Case("create_scope_overwrite", TokenKind.CREATE, Op.OVERWRITE, allow=False),
    Case("create_scope_delete", TokenKind.CREATE, Op.DELETE, allow=False),
    Case("create_scope_no_read", TokenKind.CREATE, Op.READ, allow=False),
    Case("modify_scope_no_read", TokenKind.MODIFY_ONLY, Op.READ, allow=False),
    Case("modify_scope_overwrite", TokenKind.MODIFY, Op.OVERWRITE, allow=True),
    Case("modify_scope_delete", TokenKind.MODIFY, Op.DELETE, allow=True),
    Case("path_scope_inside", TokenKind.PATH_A, Op.READ, allow=True, where="a"),
    Case("path_scope_sibling", TokenKind.PATH_A, Op.READ, allow=False, where="b"),
    # A scope path is a path component, not a string prefix: /a must not grant /ab.
    Case("path_prefix_ab", TokenKind.PATH_A, Op.READ, allow=False, where="ab"),
    Case("wrong_audience", TokenKind.WRONG_AUDIENCE, Op.READ, allow=False),
    Case("expired", TokenKind.EXPIRED, Op.READ, allow=False),
    Case("tampered_signature", TokenKind.TAMPERED, Op.READ, allow=False),
    Case("unknown_issuer", TokenKind.UNKNOWN_ISSUER, Op.READ, allow=False),
)
CASE_NAMES: tuple[str, ...] = tuple(case.name for case in CASES)

FIXTURE_DIRS = ("a", "b", "ab")
FIXTURE_NAME = "fixture"
FIXTURE_DATA = b"lakeprobe token-authz fixture\n"


def fixture_root(test_dir: str, probe_host: str) -> str:
    """This host's fixture tree. Never deleted by lakeprobe: the names are fixed, so the
    tree is reused and path-scoped tokens stay cacheable."""
    return posixpath.join(test_dir, f"{PREFIX}authz-{safe_host(probe_host)}")


def fixture_file(root: str, where: str) -> str:
    return posixpath.join(root, where, FIXTURE_NAME)


def scope_path(path: str, scope_prefix: str) -> str:
    """The path as a scope names it: relative to the storage path the issuer's scopes map
    to (`scope_prefix`, '/' when scopes name storage paths as they are)."""
    prefix = scope_prefix.rstrip("/")
    if prefix and path != prefix and not path.startswith(prefix + "/"):
        raise ValueError(f"{path} is not under scope_prefix {scope_prefix}")
    return path[len(prefix) :] or "/"
