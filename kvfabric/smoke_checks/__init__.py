"""Smoke checks, one module per area; `kvfabric smoke` imports every module here.

core.py: host capabilities, fabrics in both modes, a tiny TCP incast run. Add
<area>.py with functions decorated by ``kvfabric.smoke.smoke_check`` (see kvfabric/smoke.py).
"""
