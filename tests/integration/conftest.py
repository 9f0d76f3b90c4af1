"""Fixtures for root tests on real fabrics: the fabric lock, and a check that nothing of
kvfabric's is left on the host afterwards."""

from __future__ import annotations

import pytest

from kvfabric.cleanup import leftovers
from kvfabric.lock import fabric_lock
from topologies.fabric import Fabric
from topologies.leafspine import LeafSpine


def assert_nothing_left() -> None:
    # Under the lock: another test session's fabric on this machine is not our leftover.
    with fabric_lock("pytest: leftover check"):
        left = {kind: items for kind, items in leftovers().items() if items}
    assert not left, f"kvfabric state left on the host: {left}"


@pytest.fixture
def fabric_of():
    """fabric_of(mode, **LeafSpine kwargs) builds a fabric under the lock; torn down after."""
    built = []

    def make(mode: str, queues=None, queue_dir=None, **kwargs) -> Fabric:
        lock = fabric_lock("pytest")
        lock.__enter__()
        fabric = Fabric(LeafSpine(**kwargs), mode, queues=queues, queue_dir=queue_dir)
        built.append((fabric, lock))
        fabric.build()
        return fabric

    yield make
    for fabric, lock in built:
        try:
            fabric.teardown()
        finally:
            lock.__exit__(None, None, None)
    assert_nothing_left()


@pytest.fixture
def nothing_left():
    """Call it to assert that no kvfabric state remains on the host."""
    return assert_nothing_left
