"""The probe registry: lazy by module, typed by kind, one list of names."""

from __future__ import annotations

import pytest

from lakeprobe.probes.core.paramspec import validate_params
from lakeprobe.probes.core.testfiles import adler32_hex, source_adler32, source_payload
from lakeprobe.probes.registry import (
    ENDPOINT_PROBE_TYPES,
    PAIR_PROBE_TYPES,
    PROBE_TYPES,
    LazyProbeTypes,
)
from lakeprobe.probes.transfer.http_tpc import HttpTpcParams
from lakeprobe.probes.transfer.xrootd_tpc import XrootdTpcParams

MIB = 1024 * 1024


def test_every_name_loads_the_type_of_that_name_and_kind() -> None:
    """Each entry imports a module whose PROBE_TYPE has the entry's name; pair types have
    modes, endpoint types none; PROBE_TYPES finds both."""
    for name, probe_type in ENDPOINT_PROBE_TYPES.items():
        assert probe_type.name == name
        assert not probe_type.modes
        assert PROBE_TYPES[name] is probe_type
    for name, pair_type in PAIR_PROBE_TYPES.items():
        assert pair_type.name == name
        assert pair_type.modes
        assert PROBE_TYPES[name] is pair_type
    assert len(PROBE_TYPES) == len(ENDPOINT_PROBE_TYPES) + len(PAIR_PROBE_TYPES)
    assert "nope" not in PROBE_TYPES
    assert PROBE_TYPES.get("nope") is None


def test_an_entry_of_the_wrong_kind_is_refused() -> None:
    """A module registered as the wrong kind fails on lookup, naming the module."""
    wrong = LazyProbeTypes({"webdav": "storage.webdav"}, pair=True)
    with pytest.raises(TypeError, match=r"storage\.webdav\.PROBE_TYPE is not the pair type"):
        wrong["webdav"]


@pytest.mark.parametrize("model", [HttpTpcParams, XrootdTpcParams])
def test_tpc_source_files_up_to_one_gib(model: type[HttpTpcParams | XrootdTpcParams]) -> None:
    """Both TPC probes take a source file of up to 1 GiB, and no more."""
    assert validate_params(model, {"file_size_bytes": 1024 * MIB}).file_size_bytes == 1024 * MIB
    with pytest.raises(ValueError, match="less than or equal"):
        validate_params(model, {"file_size_bytes": 1024 * MIB + 1})


@pytest.mark.parametrize("size", [1, 7, MIB, MIB + 7, 3 * MIB - 1])
def test_source_checksum_is_computed_by_blocks(size: int) -> None:
    """The block-wise adler32 of the source file equals that of its whole bytes."""
    data = source_payload(size)
    assert len(data) == size
    assert source_adler32(size) == adler32_hex(data)
