# A thin wrapper over the tested set-up script, for CI smoke runs in privileged containers:
#   docker build -t kvfabric .
#   docker run --rm --privileged kvfabric            # runs the test suite (make test)
#   docker run --rm --privileged kvfabric make demo  # runs the default experiment
FROM debian:12
RUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        --no-install-recommends python3 python3-venv python3-pip make ca-certificates \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/kvfabric
COPY . .
RUN rm -rf .venv && bash scripts/setup.sh || true
CMD ["make", "test"]
