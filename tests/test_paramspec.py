"""Probe parameters as plain dataclasses (probes/core/paramspec.py): the defaults need no
pydantic, and values from a config or --param are validated as strictly as before, each error
naming its key."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from pydantic import ValidationError

from lakeprobe.config import ConfigError, parse_config
from lakeprobe.probes.core import params as core_params
from lakeprobe.probes.core.paramspec import param_fields, validate_params
from lakeprobe.probes.integrity.fixity import FixityParams
from lakeprobe.probes.network.params import (
    Iperf3Params,
    PairThresholds,
    PerfsonarParams,
    Thresholds,
)
from lakeprobe.probes.registry import PROBE_TYPES
from lakeprobe.probes.storage.webdav import WebdavParams
from lakeprobe.probes.transfer.xrootd_tpc import XrootdTpcParams

OPTIONAL = [name for name in PROBE_TYPES if name != "token-authz"]  # token-authz: issuer


def _errors(model: type[Any], values: dict[str, Any]) -> list[tuple[tuple[Any, ...], str]]:
    with pytest.raises(ValidationError) as caught:
        validate_params(model, values)
    return [(tuple(e["loc"]), e["msg"]) for e in caught.value.errors()]


@pytest.mark.parametrize("name", OPTIONAL)
def test_validated_empty_params_are_the_defaults(name: str) -> None:
    """Every probe type's parameter class resolves its annotations (pydantic builds it) and
    its defaults pass its own checks: an empty `params:` is the default instance."""
    model = PROBE_TYPES[name].params_model
    assert validate_params(model, {}) == model()


def test_parameters_show_their_defaults_and_descriptions() -> None:
    """`lakeprobe list` shows each parameter with its default and its Doc."""
    fields = param_fields(WebdavParams)
    assert list(fields)[:1] == ["slow_step_seconds"]  # inherited fields first
    assert fields["file_size_bytes"].default == 1024 * 1024
    assert fields["file_size_bytes"].annotation is int
    assert fields["check_missing"].description == (
        "also HEAD and DELETE a file that does not exist, expecting 404"
    )


@pytest.mark.parametrize("name", sorted(PROBE_TYPES))
def test_every_parameter_is_described(name: str) -> None:
    """Optional values too: a Doc on the whole `X | None`, not inside the union."""
    fields = param_fields(PROBE_TYPES[name].params_model)
    assert [f for f, info in fields.items() if not info.description] == []


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"file_size_bytes": 0}, [(("file_size_bytes",), "Input should be greater than 0")]),
        ({"file_size_bytes": 2**31}, [(("file_size_bytes",), "Input should be less than or "
                                       "equal to 1073741824")]),
        ({"slow_step_seconds": float("inf")}, [(("slow_step_seconds",),
                                               "Input should be a finite number")]),
        ({"file_size_bytes": "big"}, [(("file_size_bytes",), "Input should be a valid "
                                       "integer, unable to parse string as an integer")]),
        ({"colour": 1}, [(("colour",), "Unexpected keyword argument")]),
        ({"sweep_after_seconds": 10, "sweep_foreign_after_seconds": 5},
         [((), "Value error, sweep_foreign_after_seconds (5) must be longer than "
               "sweep_after_seconds (10)")]),
    ],
)  # fmt: skip
def test_bad_values_name_their_key(
    values: dict[str, Any], expected: list[tuple[tuple[Any, ...], str]]
) -> None:
    assert _errors(core_params.TestFileParams, values) == expected


def test_a_field_check_names_its_field() -> None:
    """Check(fn) errors carry the field's path, as pydantic's field validators did; both of
    xrootd-tpc's checks of `modes` apply (the copy modes, then pull only)."""
    assert _errors(XrootdTpcParams, {"modes": ["pull", "sideways"]}) == [
        (("modes",), "Value error, modes must be distinct values of pull, push: "
                     "('pull', 'sideways')"),
    ]  # fmt: skip
    assert _errors(XrootdTpcParams, {"modes": ["push"]}) == [
        (("modes",), "Value error, xrootd-tpc copies are always driven by the destination: "
                     "pull only"),
    ]  # fmt: skip


def test_length_bounds_apply() -> None:
    """MinLen and MaxLen, as Field(min_length=..., max_length=...) did."""
    assert _errors(FixityParams, {"sizes": []}) == [
        (("sizes",), "Tuple should have at least 1 item after validation, not 0"),
    ]
    assert _errors(FixityParams, {"sizes": [1] * 17}) == [
        (("sizes",), "Tuple should have at most 16 items after validation, not 17"),
    ]


def test_values_are_converted_as_before() -> None:
    """Lists become tuples, a window string becomes seconds (Before), bounds still apply."""
    params = validate_params(PerfsonarParams, {"modes": ["ipv4"], "window": "90m"})
    assert (params.modes, params.window) == (("ipv4",), 5400.0)
    assert _errors(PerfsonarParams, {"window": "60d"}) == [
        (("window",), "Input should be less than or equal to 2592000"),
    ]


def test_cross_field_checks_run_in_subclasses_too() -> None:
    """Iperf3Params' own check and NetworkParams' threshold order both run."""
    assert (
        "must be above seconds"
        in _errors(Iperf3Params, {"seconds": 40, "slow_step_seconds": 30})[0][1]
    )
    loss = {"loss_warning": 0.5, "loss_critical": 0.1}
    assert "loss_warning (0.5) must not be above" in _errors(Iperf3Params, loss)[0][1]


def test_a_pair_override_replaces_only_the_keys_it_sets() -> None:
    """`pairs:` entries remember which keys they set: an unset key keeps the global value,
    null turns one off."""
    params = validate_params(
        Iperf3Params,
        {"loss_warning": 0.002, "pairs": {"A->B": {"loss_critical": None}}},
    )
    assert params.thresholds("A", "B") == Thresholds(loss_warning=0.002, loss_critical=None)
    assert params.thresholds("B", "A") == Thresholds(loss_warning=0.002, loss_critical=0.01)


def test_pair_overrides_have_exactly_the_threshold_keys() -> None:
    """PairThresholds repeats Thresholds' keys (to know which were set): the same keys."""
    assert list(PairThresholds.model_fields) == list(param_fields(Thresholds))


def test_replace_runs_the_cross_field_checks() -> None:
    """dataclasses.replace (how the CLI sets `wait` on a tape recall) checks the result."""
    with pytest.raises(ValueError, match="must be longer than sweep_after_seconds"):
        dataclasses.replace(core_params.TestFileParams(), sweep_foreign_after_seconds=1.0)


def test_a_config_names_the_unknown_param_key() -> None:
    """The loader words a dataclass's unknown key as it words any unknown key."""
    config = """
sites:
  - name: A
    endpoints: [{name: e, url: "root://127.0.0.1:1094"}]
probes:
  - {name: x, type: xrootd, params: {file_size_bytes: 10, colour: red}}
"""
    with pytest.raises(ConfigError) as caught:
        parse_config(config)
    assert caught.value.messages == ["probes[0].params.colour: unknown key"]
