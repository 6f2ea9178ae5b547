"""The `credential` step every probe shares: load the tokens of the targets it touches."""

from __future__ import annotations

from lakeprobe.probes.outcome import Reason, StepOutcome, failed, passed
from lakeprobe.probes.secrets import Secret, redact
from lakeprobe.probes.target import Target
from lakeprobe.probes.tokens import CredentialError


async def load_tokens(*targets: Target) -> tuple[list[Secret | None], StepOutcome]:
    """One token (or None) per target, and the step's outcome: failed, naming the target and
    the token source (never a value), when a configured token cannot be loaded."""
    tokens: list[Secret | None] = []
    loaded = []
    for target in targets:
        if target.token is None:
            tokens.append(None)
            continue
        try:
            tokens.append(await target.token.token())
        except CredentialError as error:
            return tokens + [None] * (len(targets) - len(tokens)), failed(
                Reason.CREDENTIAL, redact(f"{target.describe()}: {error}")
            )
        loaded.append(f"{target.describe()}: {target.token.describe()}")
    return tokens, passed("; ".join(loaded))
