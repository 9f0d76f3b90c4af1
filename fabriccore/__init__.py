"""What every layer needs from the host it runs on: the names of everything kvfabric creates
(`naming`), running commands as argv lists (`commands`), finding and stopping the processes of
our namespaces (`processes`), unit-bearing values (`units`) and what this host can emulate
(`capabilities`).

Like `wire`, this package imports nothing from kvfabric, so the data plane (`topologies/`),
the traffic generators (`traffic/`), the controller apps (`controllers/`) and the CLI/runner
(`kvfabric/`) all stand on it.
"""
