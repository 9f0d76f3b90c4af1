"""One import point for the controller framework: Ryu where it still runs, else os-ken.

os-ken is the OpenStack fork of Ryu with the same API under another package name (``OSKenApp``
for ``RyuApp``); apps import everything from here so they load under either.
"""

from __future__ import annotations

try:  # pragma: no cover - Ryu does not install on Python 3.11; kept for older hosts
    from ryu import cfg
    from ryu.base import app_manager
    from ryu.base.app_manager import RyuApp as App
    from ryu.controller import ofp_event
    from ryu.controller.handler import (
        CONFIG_DISPATCHER,
        DEAD_DISPATCHER,
        MAIN_DISPATCHER,
        set_ev_cls,
    )
    from ryu.lib import hub
    from ryu.lib.packet import ethernet, ipv4, packet, tcp, udp
    from ryu.ofproto import ofproto_v1_3

    FRAMEWORK = "ryu"
except ImportError:
    from os_ken import cfg
    from os_ken.base import app_manager
    from os_ken.base.app_manager import OSKenApp as App
    from os_ken.controller import ofp_event
    from os_ken.controller.handler import (
        CONFIG_DISPATCHER,
        DEAD_DISPATCHER,
        MAIN_DISPATCHER,
        set_ev_cls,
    )
    from os_ken.lib import hub
    from os_ken.lib.packet import ethernet, ipv4, packet, tcp, udp
    from os_ken.ofproto import ofproto_v1_3

    FRAMEWORK = "os_ken"

__all__ = ["App", "CONFIG_DISPATCHER", "DEAD_DISPATCHER", "FRAMEWORK", "MAIN_DISPATCHER",
           "app_manager", "cfg", "ethernet", "hub", "ipv4", "ofp_event", "ofproto_v1_3",
           "packet", "set_ev_cls", "tcp", "udp"]
