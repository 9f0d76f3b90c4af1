"""Smoke check of the OpenFlow controller: an os-ken app programs an OVS leaf-spine and every
host pair is reachable through its rules; controller and fabric leave nothing behind."""

from __future__ import annotations

import tempfile
from pathlib import Path

from kvfabric.smoke import Skip, smoke_check

from .core import SMOKE_FABRIC, _fabric_lock, _ovs_running


@smoke_check("controller-ecmp", area="controller", order=60)
def controller_ecmp() -> str:
    """ecmp controller (os-ken): all host pairs ping through controller-installed rules."""
    if not _ovs_running():
        raise Skip("Open vSwitch is not running (make setup starts it)")
    from controllers.process import ControllerProcess
    from controllers.topology import describe
    from topologies.fabric import Fabric
    from topologies.leafspine import LeafSpine

    with _fabric_lock("kvfabric smoke: controller"), \
            tempfile.TemporaryDirectory(prefix="kvfabric-smoke-") as tmp:
        fabric = Fabric(LeafSpine(**SMOKE_FABRIC), "openflow", static_rules=False)
        controller = None
        try:
            fabric.build()
            controller = ControllerProcess(
                "ecmp", describe(fabric.topo, fabric.plans, fabric.host_ips), Path(tmp))
            controller.start(fabric.bridges)
            hosts = fabric.hosts()
            failures = [f"{s}->{d}" for s in hosts for d in hosts if s != d and fabric.run(
                s, ["ping", "-c", "1", "-W", "2", fabric.host_ips[d]],
                check=False).returncode != 0]
        finally:
            if controller is not None:
                controller.stop()
            fabric.teardown()
    if failures:
        raise RuntimeError(f"unreachable through the controller's rules: {failures}")
    return f"{len(hosts) * (len(hosts) - 1)} pairs reachable through os-ken ecmp rules"
