# The README's two commands: `make demo` and `make test`. Both set up what is missing first.
PY := .venv/bin/python
KVFABRIC := .venv/bin/kvfabric

.PHONY: setup demo test unit lint bench fidelity clean doctor smoke

setup:
	@bash scripts/setup.sh

demo: setup
	$(KVFABRIC) run tcp_incast

test: setup
	$(PY) -m ruff check .
	$(PY) -m pytest -ra

unit: setup
	$(PY) -m pytest -ra tests/unit

lint: setup
	$(PY) -m ruff check .

bench: setup
	$(PY) bench/bringup.py
	$(PY) bench/bringup.py --scale
	$(PY) bench/queues.py
	$(PY) bench/roce_sender.py
	$(PY) bench/smoke.py --repeat 3
	$(PY) bench/fidelity.py

# kvfabric beside HPCC's ns-3 on the 8-to-1 DCQCN incast (bench/fidelity.py; as root).
fidelity: setup
	$(PY) bench/fidelity.py $(if $(DILATION),--dilation $(DILATION))

# Short end-to-end check for CI (JUNIT=path.xml also writes JUnit XML).
smoke: setup
	$(KVFABRIC) smoke $(if $(JUNIT),--junit $(JUNIT))

doctor: setup
	$(KVFABRIC) doctor

clean: setup
	$(KVFABRIC) clean
