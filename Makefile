# process-collector: `make run` and `make test` do all the set-up on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BPF_OBJ := collector/probe/process.bpf.o
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

# One recipe (bpf/build.py) for this object and the wheel's: vmlinux.h from the build
# machine's BTF, then clang; CO-RE relocates to the running kernel at load time.
bpf: $(BPF_OBJ)
$(BPF_OBJ): bpf/process.bpf.c bpf/process.h bpf/build.py build/.apt.stamp
	$(PYTHON) bpf/build.py $@ --build-dir build

venv: $(VENV)/.stamp
$(VENV)/.stamp: pyproject.toml setup.py collector/_decode.c collector/encode/_jsonline.c collector/probe/_ring.c collector/enrich/_exec_id.c collector/enrich/_cache.c collector/pipeline/_reader.c collector/encode/_avro.c sinks/kafka/_produce.c collector/_slots.h bpf/process.h
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

# -- Container image (Containerfile): buildah on a debootstrap'd bookworm root, the wheel in a
# venv. The tag is the one deploy/daemonset.yaml names (tests/test_deploy.py checks it).
# RUN steps in a chroot: crun refuses containers on hosts with hybrid cgroups (v1 + v2).
IMAGE ?= localhost/process-collector:$(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
IMAGE_CTX := build/image
# runc: podman's default runtime crun refuses to start containers on hybrid cgroups (v1 + v2)
IMAGE_TOOLS := buildah podman runc debootstrap

.PHONY: image print-image image-tools
print-image:
	@echo $(IMAGE)

image-tools: build/.image-tools.stamp
build/.image-tools.stamp:
	@mkdir -p build
	@missing=""; for p in $(IMAGE_TOOLS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi
	@touch $@

image: setup image-tools
	rm -rf $(IMAGE_CTX) && mkdir -p $(IMAGE_CTX)/wheels
	ln -f "$$(deploy/image/rootfs.sh)" $(IMAGE_CTX)/rootfs.tar 2>/dev/null || cp "$$(deploy/image/rootfs.sh)" $(IMAGE_CTX)/rootfs.tar
	$(VENV)/bin/pip wheel -q --disable-pip-version-check --wheel-dir $(IMAGE_CTX)/wheels .
	@old="$$(buildah images -q $(IMAGE) 2>/dev/null || true)"; \
	buildah bud --quiet --layers=false --isolation=chroot -f Containerfile -t $(IMAGE) $(IMAGE_CTX) && \
	if [ -n "$$old" ] && [ "$$old" != "$$(buildah images -q $(IMAGE))" ]; then \
		buildah rmi "$$old" >/dev/null 2>&1 || true; fi  # the previous build, now untagged
	@buildah images --format '{{.Name}}:{{.Tag}} {{.Size}}' $(IMAGE)
# The kernel matrix (tests/kernels/): Debian's kernels 5.10 to 7.x under qemu (TCG) plus this
# host's kernel, each running tests/kernels/guest_checks.py against the collector of `make wheel`.
KERNELS_APT_PACKAGES := qemu-system-x86 debootstrap cpio python3-venv
KERNELS ?=
CHECKOUT ?=
.PHONY: kernels kernels-apt kernels-readme
kernels-apt: build/.kernels-apt.stamp
build/.kernels-apt.stamp:
	@mkdir -p build
	@missing=""; for p in $(KERNELS_APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi
	@touch $@

kernels: wheel kernels-apt
	$(VENV)/bin/python -m tests.kernels.matrix $(if $(KERNELS),--kernels $(KERNELS)) \
		$(if $(CHECKOUT),--checkout $(CHECKOUT))

# Rewrite README's "Supported kernels" table from tests/kernels/results.json.
kernels-readme: venv
	$(VENV)/bin/python -m tests.kernels.readme_table
# A local three-node Kafka cluster (KRaft, replication 3, min.insync.replicas 2) on
# 127.0.0.1:9092,9093,9094 for trying failover by hand (Ctrl-C stops all three).
.PHONY: kafka-cluster
kafka-cluster: setup
	$(VENV)/bin/python tests/support/kafka_cluster.py start --dir .cache/kafka-cluster-run --ports 9092,9093,9094

# A local SIEM stack: Kafka, OpenSearch 3.8 pulling the OCSF and ECS JSON topics, Apicurio and
# Apache Camel indexing their Confluent Avro topics (ARGS=--no-avro: JSON only); Ctrl-C stops it.
.PHONY: siem
siem: setup
	$(VENV)/bin/python tests/support/siem_stack.py $(ARGS)

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

# The kernel matrix's bcc row (tests/kernels/bcc_row.py): Debian 12's 6.1 kernel under qemu running
# the checks with `--backend bcc` and offsets from its own 6.1 headers. Not in `make kernels` (CI):
# bcc compiles with clang inside the TCG guest, ~4-7 min for the row.
.PHONY: kernels-bcc
kernels-bcc: wheel kernels-apt bcc
	$(VENV)/bin/python -m tests.kernels.matrix --kernels bookworm-bcc

# Per-event cost in an exec storm, side by side with the floor, libbpf-tools, auditd (issue 15).
# Installs its own bench-only packages (libbpf-tools, auditd; py-spy for --profile) on first use.
# ARGS: e.g. ARGS=--quick, ARGS='--collector A=/path/a --collector B=/path/b', ARGS=--profile
.PHONY: bench-storm
bench-storm: setup
	$(VENV)/bin/python bench/storm.py $(ARGS)
