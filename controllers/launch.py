"""Start a controller app: ``python -m controllers.launch --app ecmp --topology FILE --port N``.

os-ken 4.x ships no osken-manager, so this is the manager: patch the hub (eventlet), point the
OpenFlow listener at 127.0.0.1:PORT, hand the app its configuration and run it with
AppManager.run_apps until SIGTERM.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys

APPS = {"ecmp": "controllers.fabric_app", "adaptive": "controllers.fabric_app"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--app", choices=sorted(APPS), required=True)
    parser.add_argument("--topology", required=True, help="fabric JSON written by the runner")
    parser.add_argument("--port", type=int, required=True, help="OpenFlow TCP port")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--status", help="JSON file the app keeps up to date")
    parser.add_argument("--events", help="JSON-lines event log")
    parser.add_argument("--poll-interval-s", type=float, default=0.01)
    parser.add_argument("--adaptive", default="{}", help="AdaptiveParams as JSON")
    args = parser.parse_args(argv)

    # os-ken 4.x defaults to a native-thread hub whose OpenFlow server drops switches right
    # after the handshake here; the eventlet hub (Ryu's) works. Must be set before import.
    os.environ.setdefault("OSKEN_HUB_TYPE", "eventlet")
    from .compat import hub
    hub.patch(thread=True)
    from .compat import app_manager, cfg

    logging.basicConfig(level=logging.INFO, stream=sys.stdout,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    cfg.CONF(args=[], project="os_ken")
    cfg.CONF.set_override("ofp_listen_host", args.host)
    cfg.CONF.set_override("ofp_tcp_listen_port", args.port)

    import importlib
    module = importlib.import_module(APPS[args.app])
    module.CONFIG.update({"mode": args.app, "topology": args.topology, "status": args.status,
                          "events": args.events, "poll_interval_s": args.poll_interval_s,
                          "adaptive": json.loads(args.adaptive)})
    # os-ken's own shutdown path fails on its hub threads; the app keeps no state to save
    # (its event log is line-buffered), so SIGTERM ends the process at once.
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    app_manager.AppManager.run_apps([APPS[args.app]])
    return 0


if __name__ == "__main__":
    sys.exit(main())
