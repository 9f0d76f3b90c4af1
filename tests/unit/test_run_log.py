"""run.log takes the run's own log and asyncio's (pyroute2's event loops report requests that
a signal cut short when their socket is discarded): neither reaches the terminal while a run
is open, and asyncio's records go to the terminal's handlers again after it."""

from __future__ import annotations

import logging

from kvfabric.runner import close_run_log, open_run_log


def test_asyncio_records_go_to_run_log_while_a_run_is_open(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    handler = open_run_log(tmp_path)
    try:
        logging.getLogger("asyncio").error("Task exception was never retrieved")
        logging.getLogger("kvfabric").info("run started")
    finally:
        close_run_log(handler)
    text = (tmp_path / "run.log").read_text()
    assert "asyncio Task exception was never retrieved" in text
    assert "kvfabric run started" in text
    assert "never retrieved" not in caplog.text  # not propagated to the root (terminal) side
    logging.getLogger("asyncio").error("after the run")
    assert "after the run" in caplog.text
    assert "after the run" not in (tmp_path / "run.log").read_text()
