# process-collector: `make run` and `make test` do all the set-up on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BPF_OBJ := collector/probe/process.bpf.o
APT_PACKAGES := clang llvm bpftool libbpf-dev libbpf1 openssl default-jre-headless maven
ARGS ?=

.PHONY: setup run test bench apt bpf venv lint clean kafka

setup: apt bpf venv

# Debian packages: the BPF toolchain (build time), libbpf (run time), Java and Maven (test broker).
apt: build/.apt.stamp
build/.apt.stamp:
	@mkdir -p build
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi
	@touch $@

# One recipe (bpf/build.py) for this object and the wheel's: vmlinux.h from the build
# machine's BTF, then clang; CO-RE relocates to the running kernel at load time.
bpf: $(BPF_OBJ)
$(BPF_OBJ): bpf/process.bpf.c bpf/process.h bpf/build.py build/.apt.stamp
	$(PYTHON) bpf/build.py $@ --build-dir build

venv: $(VENV)/.stamp
$(VENV)/.stamp: pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check -e '.[test]'
	@touch $@

run: setup
	$(VENV)/bin/collector run $(ARGS)

test: setup
	$(VENV)/bin/pytest $(ARGS)

bench: setup
	$(VENV)/bin/python bench/run_all.py

lint: setup
	$(VENV)/bin/ruff check collector sinks tests bench
	$(VENV)/bin/mypy collector sinks

# A local single-node Kafka broker for trying the Kafka sink (Ctrl-C stops it).
kafka: setup
	$(VENV)/bin/python tests/support/kafka_broker.py start --dir .cache/kafka-run --port 9092

clean:
	rm -rf build $(BPF_OBJ) $(VENV)

# The fast tier: no kernel, no broker, no root (tests/unit/); seconds.
.PHONY: test-unit
test-unit: venv
	$(VENV)/bin/pytest tests/unit -q $(ARGS)
# The wheel (dist/), with the BPF object compiled by the build backend (setup.py -> bpf/build.py).
.PHONY: wheel
wheel: apt venv
	$(VENV)/bin/pip wheel -q --disable-pip-version-check --no-deps -w dist .
# A local three-node Kafka cluster (KRaft, replication 3, min.insync.replicas 2) on
# 127.0.0.1:9092,9093,9094 for trying failover by hand (Ctrl-C stops all three).
.PHONY: kafka-cluster
kafka-cluster: setup
	$(VENV)/bin/python tests/support/kafka_cluster.py start --dir .cache/kafka-cluster-run --ports 9092,9093,9094
