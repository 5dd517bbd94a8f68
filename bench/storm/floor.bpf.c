// SPDX-License-Identifier: GPL-2.0
/*
 * The floor of bench/storm.py: the cheapest consumer of the tracepoints the
 * collector uses (bpf/process.bpf.c: tp_btf sched_process_exec, _exit and
 * _fork), sending one small fixed-size record per event. What it costs is
 * what any ring-buffer tracer of these events must pay; the collector's
 * excess over it is its own work.
 *
 * `batched` picks the wakeup policy: the collector's (no wakeup until
 * wakeup_bytes are queued, user space drains on a timer) or the kernel's
 * default (a wakeup whenever the reader has caught up, i.e. about one per
 * record when the reader is fast).
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "floor.h"

char LICENSE[] SEC("license") = "GPL";

const volatile __u32 batched = 0;
const volatile __u32 wakeup_bytes = 256 << 10;

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 16 << 20);
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} drops SEC(".maps");

static __always_inline __u64 submit_flags(void)
{
	if (!batched)
		return 0;
	if (bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) >= wakeup_bytes)
		return BPF_RB_FORCE_WAKEUP;
	return BPF_RB_NO_WAKEUP;
}

static __always_inline int emit(__u32 kind, struct task_struct *task)
{
	struct floor_record *r;
	__u32 zero = 0;
	__u64 *n;

	/* one record per thread group: its leader's events only */
	if (BPF_CORE_READ(task, pid) != BPF_CORE_READ(task, tgid))
		return 0;
	r = bpf_ringbuf_reserve(&events, sizeof(*r), 0);
	if (!r) {
		n = bpf_map_lookup_elem(&drops, &zero);
		if (n)
			*n += 1;
		return 0;
	}
	r->kind = kind;
	r->pid = BPF_CORE_READ(task, tgid);
	r->ppid = BPF_CORE_READ(task, real_parent, tgid);
	r->pad = 0;
	r->ktime_ns = bpf_ktime_get_boot_ns();
	BPF_CORE_READ_STR_INTO(&r->comm, task, comm);
	bpf_ringbuf_submit(r, submit_flags());
	return 0;
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(floor_exec, struct task_struct *task)
{
	return emit(FLOOR_EXEC, task);
}

SEC("tp_btf/sched_process_exit")
int BPF_PROG(floor_exit, struct task_struct *task)
{
	return emit(FLOOR_EXIT, task);
}

SEC("tp_btf/sched_process_fork")
int BPF_PROG(floor_fork, struct task_struct *parent, struct task_struct *child)
{
	return emit(FLOOR_FORK, child);
}
