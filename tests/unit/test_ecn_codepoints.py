"""The ECN codepoints are defined once (wire.ecn): RFC 3168's values, the TOS byte rule, and
the eBPF marker's C copies agree with them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from topologies.queues.ebpf_marker import SOURCE_PATH
from wire.ecn import (
    ECN_CE,
    ECN_CODEPOINTS,
    ECN_ECT0,
    ECN_ECT1,
    ECN_MASK,
    ECN_NOT_ECT,
    dscp_of,
    ecn_of,
    is_ce,
    tos_byte,
)


def test_codepoints_are_rfc_3168s():
    assert (ECN_NOT_ECT, ECN_ECT1, ECN_ECT0, ECN_CE, ECN_MASK) == (0, 1, 2, 3, 3)
    assert ECN_CODEPOINTS == {"notect": 0, "ect1": 1, "ect0": 2, "ce": 3}


def test_tos_byte_holds_dscp_above_ecn():
    assert tos_byte(26, ECN_ECT0) == 0x6A and tos_byte(48, ECN_NOT_ECT) == 0xC0
    tos = tos_byte(46, ECN_CE)
    assert (dscp_of(tos), ecn_of(tos), is_ce(tos)) == (46, ECN_CE, True)
    assert not is_ce(tos_byte(26, ECN_ECT0))
    with pytest.raises(ValueError):
        tos_byte(64, 0)
    with pytest.raises(ValueError):
        tos_byte(0, 4)


def test_the_ebpf_markers_c_copies_match():
    source = Path(SOURCE_PATH).read_text()
    defines = dict(re.findall(r"^#define (ECN_\w+) (0x[0-9a-fA-F]+|\d+)", source, re.M))
    assert int(defines["ECN_MASK"], 0) == ECN_MASK
    assert int(defines["ECN_CE"], 0) == ECN_CE
