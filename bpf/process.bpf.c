// SPDX-License-Identifier: GPL-2.0
/*
 * Process lifecycle probes: exec, exit (once per thread group) and fork,
 * on BTF-enabled tracepoints, sent to user space through one ring buffer.
 *
 * Everything is read at the event, in the kernel: a short-lived process is
 * gone from /proc before user space could look. Kernel structs are read with
 * CO-RE, so the one compiled object runs on any kernel with BTF.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "process.h"

char LICENSE[] SEC("license") = "GPL";

#define SIGNAL_GROUP_EXIT 0x00000004

/* struct mount embeds the struct vfsmount that paths point to */
#define real_mount(vfsmnt) \
	((struct mount *)((void *)(vfsmnt) - bpf_core_field_offset(struct mount, mnt)))

const volatile struct collector_config cfg = {
	.args_max = 16384,
	.wakeup_bytes = 1 << 20,
	.self_tgid = 0,
	.ignore_self = 0,
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 16 << 20);
} events SEC(".maps");

/* Kernel-side losses: ring buffer full, per CPU and per event kind. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, DROP_REASONS);
	__type(key, __u32);
	__type(value, __u64);
} drops SEC(".maps");

/*
 * Scratch space for building an exec record: too big for the stack and for
 * a per-CPU map value, so one slot per CPU, sized by user space before load.
 * Tracepoints run with preemption off, so a CPU's slot has one writer.
 */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 256);
	__type(key, __u32);
	__type(value, struct exec_event);
} exec_scratch SEC(".maps");

/* Thread groups to stay silent about: the collector and its descendants. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, __u8);
} ignored SEC(".maps");

static __always_inline void count_drop(__u32 reason)
{
	__u64 *n = bpf_map_lookup_elem(&drops, &reason);

	if (n)
		*n += 1;
}

/* Wake the reader only when enough is queued; it also polls on a timer. */
static __always_inline __u64 wakeup_flag(void)
{
	if (bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) >= cfg.wakeup_bytes)
		return BPF_RB_FORCE_WAKEUP;
	return BPF_RB_NO_WAKEUP;
}

static __always_inline bool is_ignored(__u32 tgid)
{
	if (!cfg.ignore_self)
		return false;
	if (tgid == cfg.self_tgid)
		return true;
	return bpf_map_lookup_elem(&ignored, &tgid) != NULL;
}

static __always_inline void fill_task_ids(struct task_ids *ids, struct task_struct *task)
{
	struct task_struct *leader = BPF_CORE_READ(task, group_leader);

	ids->pid = BPF_CORE_READ(task, tgid);
	ids->tid = BPF_CORE_READ(task, pid);
	ids->ppid = BPF_CORE_READ(task, real_parent, tgid);
	ids->start_ns = BPF_CORE_READ(leader, start_boottime);
	ids->cgroup_id = BPF_CORE_READ(task, cgroups, dfl_cgrp, kn, id);
	bpf_probe_read_kernel_str(ids->comm, sizeof(ids->comm), &task->comm);
}

/*
 * State of one path walk, carried across bpf_loop() steps. It lives in a
 * map, not on the stack: values read from a map are unknown to the
 * verifier, so the loop body is verified once instead of once per depth.
 */
struct path_walk {
	struct dentry *dentry;
	struct mount *mnt;
	__u32 off;
	__u32 done;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct path_walk);
} path_walks SEC(".maps");

/*
 * One step of a path walk: write one component, or cross one mount.
 * Walks dentries up to the mount root, then crosses to the parent mount,
 * like d_path() but without the helper (bpf_d_path is not allowed on
 * tracepoints).
 */
static long path_step(__u32 i, void *ctx)
{
	__u32 zero = 0, cpu = bpf_get_smp_processor_id();
	struct path_walk *w = bpf_map_lookup_elem(&path_walks, &zero);
	struct exec_event *e = bpf_map_lookup_elem(&exec_scratch, &cpu);
	struct dentry *dentry, *mnt_root, *parent;
	struct mount *mnt, *up;
	const unsigned char *name;
	__u32 off;
	long n;

	if (!w || !e)
		return 1;
	/* plain locals: CO-RE relocations must not reach into struct path_walk */
	dentry = w->dentry;
	mnt = w->mnt;
	mnt_root = BPF_CORE_READ(mnt, mnt.mnt_root);
	parent = BPF_CORE_READ(dentry, d_parent);
	if (dentry == mnt_root || dentry == parent) {
		up = BPF_CORE_READ(mnt, mnt_parent);
		if (dentry != mnt_root || up == mnt) {
			/* the root of the (mount namespace's) tree */
			w->done = 1;
			return 1;
		}
		w->dentry = BPF_CORE_READ(mnt, mnt_mountpoint);
		w->mnt = up;
		return 0;
	}
	off = w->off;
	if (off >= PATH_BUDGET)
		return 1;
	name = BPF_CORE_READ(dentry, d_name.name);
	n = bpf_probe_read_kernel_str(&e->data[off & (EXEC_DATA_HALF - 1)], NAME_CAP, name);
	if (n <= 0)
		return 1;
	w->off = off + n;
	w->dentry = parent;
	return 0;
}

/*
 * Write the components of a path, leaf first, each NUL-terminated, into the
 * CPU's scratch record at off; user space reverses them. Returns the new
 * offset; sets *truncated when the walk did not reach the root.
 */
static __always_inline __u32 write_path(__u32 off, struct dentry *dentry,
					struct vfsmount *vfsmnt, bool *truncated)
{
	__u32 zero = 0;
	struct path_walk *w = bpf_map_lookup_elem(&path_walks, &zero);

	*truncated = true;
	if (!w)
		return off;
	w->dentry = dentry;
	w->mnt = real_mount(vfsmnt);
	w->off = off;
	w->done = 0;
	bpf_loop(PATH_DEPTH_MAX, path_step, NULL, 0);
	*truncated = !w->done;
	return w->off;
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(handle_exec, struct task_struct *task, pid_t old_pid, struct linux_binprm *bprm)
{
	struct exec_event *e;
	const struct cred *cred;
	struct mm_struct *mm;
	unsigned long arg_start, arg_end, total;
	struct file *file;
	struct fs_struct *fs;
	__u32 cpu = bpf_get_smp_processor_id(), off = 0, args_len, size;
	bool trunc;

	if (is_ignored(BPF_CORE_READ(task, tgid)))
		return 0;
	e = bpf_map_lookup_elem(&exec_scratch, &cpu);
	if (!e)
		return 0;

	e->hdr.kind = EVENT_EXEC;
	e->hdr.ktime_ns = bpf_ktime_get_boot_ns();
	fill_task_ids(&e->task, task);
	e->flags = 0;

	cred = BPF_CORE_READ(task, real_cred);
	e->uid = BPF_CORE_READ(cred, uid.val);
	e->euid = BPF_CORE_READ(cred, euid.val);
	e->gid = BPF_CORE_READ(cred, gid.val);
	e->egid = BPF_CORE_READ(cred, egid.val);
	e->auid = (__u32)-1;
	if (bpf_core_field_exists(task->loginuid))
		e->auid = BPF_CORE_READ(task, loginuid.val);

	/* binary: the file being executed (after #! resolution) */
	file = BPF_CORE_READ(bprm, file);
	off = write_path(0, BPF_CORE_READ(file, f_path.dentry),
			 BPF_CORE_READ(file, f_path.mnt), &trunc);
	if (trunc)
		e->flags |= EXEC_BINARY_TRUNCATED;
	e->binary_len = off;

	/* cwd */
	fs = BPF_CORE_READ(task, fs);
	off = write_path(off, BPF_CORE_READ(fs, pwd.dentry),
			 BPF_CORE_READ(fs, pwd.mnt), &trunc);
	if (trunc)
		e->flags |= EXEC_CWD_TRUNCATED;
	e->cwd_len = off - e->binary_len;

	/* argv, from the new image's memory (just written by the kernel) */
	mm = BPF_CORE_READ(task, mm);
	arg_start = BPF_CORE_READ(mm, arg_start);
	arg_end = BPF_CORE_READ(mm, arg_end);
	total = arg_end > arg_start ? arg_end - arg_start : 0;
	e->args_total = total;
	args_len = total;
	if (args_len > cfg.args_max) {
		args_len = cfg.args_max;
		e->flags |= EXEC_ARGS_TRUNCATED;
	}
	if (args_len >= ARGS_CAP) {
		args_len = ARGS_CAP - 1;
		e->flags |= EXEC_ARGS_TRUNCATED;
	}
	off &= EXEC_DATA_HALF - 1;
	/* keep the compiler from dropping the mask the verifier needs */
	asm volatile("" : "+r"(args_len));
	args_len &= ARGS_CAP - 1;
	if (args_len > 0 &&
	    bpf_probe_read_user(&e->data[off], args_len, (void *)arg_start)) {
		e->flags |= EXEC_ARGS_UNREADABLE;
		args_len = 0;
	}
	e->args_len = args_len;

	size = offsetof(struct exec_event, data) + off + args_len;
	if (size > sizeof(*e))
		size = sizeof(*e);
	e->hdr.size = size;
	if (bpf_ringbuf_output(&events, e, size, wakeup_flag()))
		count_drop(DROP_EXEC);
	return 0;
}

SEC("tp_btf/sched_process_exit")
int BPF_PROG(handle_exit, struct task_struct *task, bool group_dead)
{
	struct exit_event *e;
	__u32 tgid = BPF_CORE_READ(task, tgid);

	/* one event per thread group: only its last thread reports */
	if (!group_dead)
		return 0;
	if (is_ignored(tgid)) {
		bpf_map_delete_elem(&ignored, &tgid);
		return 0;
	}
	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		count_drop(DROP_EXIT);
		return 0;
	}
	e->hdr.kind = EVENT_EXIT;
	e->hdr.size = sizeof(*e);
	e->hdr.ktime_ns = bpf_ktime_get_boot_ns();
	fill_task_ids(&e->task, task);
	e->exit_status = BPF_CORE_READ(task, exit_code);
	if (BPF_CORE_READ(task, signal, flags) & SIGNAL_GROUP_EXIT)
		e->exit_status = BPF_CORE_READ(task, signal, group_exit_code);
	e->pad = 0;
	bpf_ringbuf_submit(e, wakeup_flag());
	return 0;
}

SEC("tp_btf/sched_process_fork")
int BPF_PROG(handle_fork, struct task_struct *parent, struct task_struct *child)
{
	struct fork_event *e;
	__u32 ptgid = BPF_CORE_READ(parent, tgid);
	__u32 ctgid = BPF_CORE_READ(child, tgid);
	__u8 one = 1;

	/* a new thread is not a new process */
	if (BPF_CORE_READ(child, pid) != ctgid)
		return 0;
	if (is_ignored(ptgid)) {
		bpf_map_update_elem(&ignored, &ctgid, &one, BPF_ANY);
		return 0;
	}
	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		count_drop(DROP_FORK);
		return 0;
	}
	e->hdr.kind = EVENT_FORK;
	e->hdr.size = sizeof(*e);
	e->hdr.ktime_ns = bpf_ktime_get_boot_ns();
	fill_task_ids(&e->task, child);
	bpf_ringbuf_submit(e, wakeup_flag());
	return 0;
}
