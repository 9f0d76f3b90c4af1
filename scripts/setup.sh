#!/usr/bin/env bash
# Set up everything kvfabric needs on a Debian 12 machine, as root; idempotent and quick the
# second time. Installs only what is missing: Debian packages, a Python venv with the project,
# bpffs, and a running Open vSwitch (userspace datapath where the kernel has no module).
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf 'setup: %s\n' "$*"; }

if [ "$(id -u)" -ne 0 ]; then
  echo "setup: kvfabric needs root (namespaces, tc, OVS); run: sudo make ..." >&2
  exit 2
fi

APT_PACKAGES=(mininet openvswitch-switch iperf3 iputils-ping ethtool tcpdump tshark
              clang llvm libbpf-dev bpftool tcpreplay iproute2 procps git make)
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" ||
    missing+=("$pkg")
done
PYTHON=${PYTHON:-python3}
if ! "$PYTHON" -m venv --help >/dev/null 2>&1; then
  missing+=(python3-venv)
fi
if [ ${#missing[@]} -gt 0 ]; then
  log "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Python environment: rebuilt only when pyproject.toml changes.
stamp=.venv/.kvfabric-installed
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ ! -x .venv/bin/python ]; then
  log "creating .venv with $("$PYTHON" --version)"
  "$PYTHON" -m venv .venv
fi
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  log "installing kvfabric and its Python dependencies into .venv"
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -e '.[test]'
  echo "$want" > "$stamp"
fi

# bpffs, for pinned BPF maps of the eBPF ECN marker.
if ! mountpoint -q /sys/fs/bpf; then
  log "mounting bpffs on /sys/fs/bpf"
  mount -t bpf bpf /sys/fs/bpf
fi

# Open vSwitch: started if not running. Without the openvswitch kernel module, kvfabric
# uses the userspace datapath (datapath_type=netdev), which needs only ovs-vswitchd.
if ! ovs-vsctl --timeout=3 show >/dev/null 2>&1; then
  log "starting Open vSwitch"
  /usr/share/openvswitch/scripts/ovs-ctl start --system-id=random >/dev/null 2>&1 || true
  ovs-vsctl --timeout=10 show >/dev/null ||
    { echo "setup: Open vSwitch did not start; see /var/log/openvswitch/" >&2; exit 1; }
fi
log "ready"
