"""The `credential` step every probe shares: load the tokens of the targets it touches."""

from __future__ import annotations

from lakeprobe.probes.core.outcome import Reason, Status, StepOutcome, passed
from lakeprobe.probes.core.target import Target
from lakeprobe.probes.credentials.errors import CredentialError, IssuerError
from lakeprobe.probes.credentials.secrets import Secret, redact

CLEARTEXT_SCHEMES = frozenset({"root", "http"})


def cleartext_refusal(target: Target) -> StepOutcome | None:
    """UNKNOWN/credential when a token for `target` would travel in cleartext unasked (the
    config refuses this too; this is the probes' own guard), else None."""
    if target.protocol not in CLEARTEXT_SCHEMES or target.insecure_token_transport:
        return None
    detail = (
        f"{target.describe()}: refusing to send a token over {target.protocol}:// in "
        "cleartext (insecure_token_transport is not set)"
    )
    return StepOutcome(Status.UNKNOWN, Reason.CREDENTIAL, detail)


async def load_tokens(*targets: Target) -> tuple[list[Secret | None], StepOutcome]:
    """One token (or None) per target, and the step's outcome. A token that cannot be loaded,
    or that would travel in cleartext, leaves the endpoint unjudged: UNKNOWN, reason `issuer`
    when the token issuer failed, else `credential`; the detail names the target and the
    token source, never a value."""
    refusals = [r for t in targets if t.token is not None and (r := cleartext_refusal(t))]
    if refusals:
        return [None] * len(targets), refusals[0]
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
