"""The `credential` step every probe shares: load the tokens of the targets it touches."""

from __future__ import annotations

from lakeprobe.probes.oidc import IssuerError
from lakeprobe.probes.outcome import Reason, Status, StepOutcome, passed
from lakeprobe.probes.secrets import Secret, redact
from lakeprobe.probes.target import Target
from lakeprobe.probes.tokens import CredentialError


async def load_tokens(*targets: Target) -> tuple[list[Secret | None], StepOutcome]:
    """One token (or None) per target, and the step's outcome. A token that cannot be loaded
    leaves the endpoint unjudged: UNKNOWN, reason `issuer` when the token issuer failed, else
    `credential`; the detail names the target and the token source, never a value."""
    tokens: list[Secret | None] = []
    loaded = []
    for target in targets:
        if target.token is None:
            tokens.append(None)
            continue
        try:
            tokens.append(await target.token.token())
        except CredentialError as error:
            reason = Reason.ISSUER if isinstance(error, IssuerError) else Reason.CREDENTIAL
            source, problem = target.token.describe(), str(error)
            text = problem if source in problem else f"{source}: {problem}"
            detail = redact(f"{target.describe()}: {text}")
            missing = [None] * (len(targets) - len(tokens))
            return tokens + missing, StepOutcome(Status.UNKNOWN, reason, detail)
        loaded.append(f"{target.describe()}: {target.token.describe()}")
    return tokens, passed("; ".join(loaded))
