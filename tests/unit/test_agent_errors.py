"""The queue agent counts the data-plane calls that fail instead of swallowing them, and a run
whose PFC could not act is failed with the first failure named."""

import json

from kvfabric.queue_results import pfc_failure
from topologies.queues.agent import AgentConfig, ClassConfig, PortConfig, QueueAgent


class BrokenRoute:
    def change_tbf(self, *_args, **_kwargs):
        raise OSError(19, "No such device")


def _agent(tmp_path) -> QueueAgent:
    lossless = ClassConfig("lossless", 0, 3, lossless=True, pausable=True, classid=0x10011,
                           leaf=0x110000, limit_bytes=100_000)
    port = PortConfig("h1:h1-eth0", "h1", "host", "kvf-h1", "h1-eth0", 7,
                      "02:00:00:00:00:01", "l1", 100_000_000, 1500, [lossless])
    agent = QueueAgent(AgentConfig(str(tmp_path), [port], telemetry=False))
    agent.ports[0].route = BrokenRoute()
    agent.records.open()
    return agent


def test_a_pause_that_cannot_be_applied_is_counted_and_fails_the_run(tmp_path):
    agent = _agent(tmp_path)
    port = agent.ports[0]
    agent.pfc.set_paused(port, port.cfg.classes[0], True)
    agent.pfc.set_paused(port, port.cfg.classes[0], False)
    agent.finish()
    errors = json.loads((tmp_path / "agent.json").read_text())["dataplane_errors"]
    assert errors["set_paused"]["count"] == 2
    assert "h1-eth0" in errors["set_paused"]["first"]
    assert "No such device" in errors["set_paused"]["first"]
    failure = pfc_failure({"agent_dataplane_errors": errors}, pfc_on=True)
    assert failure.startswith("PFC could not act: 2 failed set_paused")


def test_no_failure_without_pfc_errors():
    assert pfc_failure({"agent_dataplane_errors": {}}, pfc_on=True) is None
    resync_only = {"resync": {"count": 3, "first": "x"}}
    assert pfc_failure({"agent_dataplane_errors": resync_only}, pfc_on=True) is None
    assert pfc_failure({"agent_dataplane_errors": {"send_pfc": {"count": 1, "first": "x"}}},
                       pfc_on=False) is None
