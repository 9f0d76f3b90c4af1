"""Facts of the wire that every layer agrees on: Ethernet/IP/UDP/RoCEv2 header sizes
(`frames`), the ECN codepoints (`ecn`) and the DSCP/priority map (`dscp`).

This package imports nothing from kvfabric, so the data plane (`topologies/`), the traffic
generators (`traffic/`) and the CLI/runner (`kvfabric/`) all stand on it.
"""
