# process-collector: `make run` and `make test` do all the set-up on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BPF_OBJ := collector/probe/process.bpf.o
VMLINUX := build/vmlinux.h
APT_PACKAGES := clang llvm bpftool libbpf-dev libbpf1 openssl default-jre-headless maven
ARGS ?=

.PHONY: setup run test bench apt bpf venv lint clean kafka bcc

setup: apt bpf venv bcc

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

# vmlinux.h from the build machine's BTF; CO-RE relocates to the running kernel at load time.
$(VMLINUX): build/.apt.stamp
	@mkdir -p build
	bpftool btf dump file /sys/kernel/btf/vmlinux format c > $@.tmp && mv $@.tmp $@

bpf: $(BPF_OBJ)
$(BPF_OBJ): bpf/process.bpf.c bpf/process.h $(VMLINUX)
	clang -g -O2 -Wall -target bpf -D__TARGET_ARCH_x86 -Ibuild -Ibpf -c $< -o $@.tmp && mv $@.tmp $@

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

# The bcc backend: Debian's bcc (python3-bpfcc) made importable in the venv by one symlink
# (not a .pth over all of dist-packages, which would expose ~70 other packages), and Debian's
# split kernel headers merged into one tree under the download cache (tests/support/bcc_headers.sh).
BCC_APT_PACKAGES := python3-bpfcc libbpfcc linux-headers-amd64
BCC_SYSTEM := /usr/lib/python3/dist-packages/bcc
bcc: $(VENV)/.bcc.stamp
$(VENV)/.bcc.stamp: $(VENV)/.stamp tests/support/bcc_headers.sh
	@missing=""; for p in $(BCC_APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi
	@test -d $(BCC_SYSTEM) || { echo "bcc: $(BCC_SYSTEM) missing after installing python3-bpfcc" >&2; exit 1; }
	ln -sfn $(BCC_SYSTEM) "$$($(VENV)/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/bcc"
	$(VENV)/bin/python -c 'import bcc'
	tests/support/bcc_headers.sh
	@touch $@
