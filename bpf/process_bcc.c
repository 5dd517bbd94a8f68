// SPDX-License-Identifier: GPL-2.0
/*
 * The bcc backend's probes: the same exec, exit (once per thread group) and
 * fork records as process.bpf.c, in the same layout (process.h), for hosts
 * where the CO-RE object cannot load. bcc compiles this file on the host.
 * Unlike process.bpf.c it sends every fork record at the fork (it does not
 * hold them back): user space takes either, a held-back record only later.
 *
 * Kernel structs are never read through header types: headers of another
 * kernel give wrong offsets without any error. Every member is read at
 * OFF_<NAME>, passed by collector/probe/bcc.py as -D flags (from BTF, or from
 * headers that match the running kernel; see collector/probe/offsets.py).
 * Settings come the same way (-D), never by editing this text:
 *   ARGS_MAX, WAKEUP_BYTES, SELF_TGID, IGNORE_SELF, RINGBUF_PAGES, NCPU,
 *   HAVE_GROUP_DEAD (the exit tracepoint passes group_dead as its 2nd arg),
 *   EXIT_CLAIMS_MAX (without it: claims of dead, not yet reaped groups).
 * Only raw tracepoints: no kprobes, no BTF-typed programs.
 */
#include <uapi/asm-generic/errno-base.h>
#include "process.h"

#define SIGNAL_GROUP_EXIT 0x00000004

/* a kernel address, never dereferenced directly (bcc would rewrite it) */
typedef u64 kptr_t;

BPF_RINGBUF_OUTPUT(events, RINGBUF_PAGES);

/* Kernel-side losses: ring buffer full, per CPU and per event kind. */
BPF_PERCPU_ARRAY(drops, u64, DROP_REASONS);

/*
 * Scratch space for an exec record: too big for the stack, so one slot per
 * CPU. Raw tracepoints run with preemption off: a CPU's slot has one writer.
 */
BPF_ARRAY(exec_scratch, struct exec_event, NCPU);

/* Thread groups to stay silent about: the collector's descendants. */
BPF_HASH(ignored, u32, u8, 1024);

#if !HAVE_GROUP_DEAD
/*
 * Exit claims, for kernels whose exit tracepoint has no group_dead: the
 * construction of process.bpf.c's handle_exit_claim, where the reasons are
 * written out. In short: do_exit() decrements signal->live before the
 * tracepoint, so several threads of a group ending together can all see 0;
 * each tries to insert (tgid, group start) with BPF_NOEXIST and only the one
 * that succeeds reports. The claim goes when the group leader's task is
 * freed (sched_process_free), after every thread of the group has passed
 * the exit tracepoint. A full map still reports, counted as DROP_EXIT_CLAIM.
 */
struct exit_claim {
	u32 tgid;
	u32 pad;
	u64 start_ns;    /* the group's start (leader's start_boottime) */
};

BPF_HASH(exit_claims, struct exit_claim, u8, EXIT_CLAIMS_MAX);
#endif

static __always_inline kptr_t read_ptr(kptr_t base, int off)
{
	kptr_t v = 0;

	if (base)
		bpf_probe_read_kernel(&v, sizeof(v), (void *)(base + off));
	return v;
}

static __always_inline u32 read_u32(kptr_t base, int off)
{
	u32 v = 0;

	if (base)
		bpf_probe_read_kernel(&v, sizeof(v), (void *)(base + off));
	return v;
}

static __always_inline u64 read_u64(kptr_t base, int off)
{
	u64 v = 0;

	if (base)
		bpf_probe_read_kernel(&v, sizeof(v), (void *)(base + off));
	return v;
}

static __always_inline void count_drop(u32 reason)
{
	u64 *n = drops.lookup(&reason);

	if (n)
		*n += 1;
}

/*
 * Bytes this CPU submitted since it last woke the reader. bcc offers no way
 * to name the ring buffer map in bpf_ringbuf_query(), so instead of "wake
 * once WAKEUP_BYTES are queued" each CPU wakes the reader once it has sent
 * its share of that; the reader also polls on a timer.
 */
BPF_PERCPU_ARRAY(unsignalled, u64, 1);

static __always_inline u64 wakeup_flag(u32 bytes)
{
	u32 zero = 0;
	u64 *n = unsignalled.lookup(&zero);

	if (!n)
		return 0;
	*n += bytes;
	if (*n < WAKEUP_BYTES / NCPU)
		return BPF_RB_NO_WAKEUP;
	*n = 0;
	return BPF_RB_FORCE_WAKEUP;
}

static __always_inline bool is_ignored(u32 tgid)
{
	if (!IGNORE_SELF)
		return false;
	if (tgid == SELF_TGID)
		return true;
	return ignored.lookup(&tgid) != NULL;
}

static __always_inline void fill_task_ids(struct task_ids *ids, kptr_t task)
{
	kptr_t leader = read_ptr(task, OFF_TASK_GROUP_LEADER);
	kptr_t cgrp;

	ids->pid = read_u32(task, OFF_TASK_TGID);
	ids->tid = read_u32(task, OFF_TASK_PID);
	ids->ppid = read_u32(read_ptr(task, OFF_TASK_REAL_PARENT), OFF_TASK_TGID);
	ids->pad = 0;
	ids->start_ns = read_u64(leader, OFF_TASK_START_BOOTTIME);
	cgrp = read_ptr(read_ptr(task, OFF_TASK_CGROUPS), OFF_CSS_SET_DFL_CGRP);
	ids->cgroup_id = read_u64(read_ptr(cgrp, OFF_CGROUP_KN), OFF_KERNFS_NODE_ID);
	bpf_probe_read_kernel_str(ids->comm, sizeof(ids->comm), (void *)(task + OFF_TASK_COMM));
}

/* State of one path walk, kept in a map so each step starts from unknown values. */
struct path_walk {
	kptr_t dentry;
	kptr_t mnt;      /* struct mount */
	u32 off;
	u32 done;
};

BPF_PERCPU_ARRAY(path_walks, struct path_walk, 1);

/*
 * One step of a path walk: write one component, or cross one mount.
 * Returns 1 when the walk is over. Like d_path(), without the helper.
 */
static __always_inline int path_step(struct path_walk *w, struct exec_event *e)
{
	kptr_t dentry = w->dentry, mnt = w->mnt, mnt_root, parent, up, name;
	u32 off;
	long n;

	mnt_root = read_ptr(mnt + OFF_MOUNT_MNT, OFF_VFSMOUNT_ROOT);
	parent = read_ptr(dentry, OFF_DENTRY_PARENT);
	if (dentry == mnt_root || dentry == parent) {
		up = read_ptr(mnt, OFF_MOUNT_PARENT);
		if (dentry != mnt_root || up == mnt) {
			/* the root of the (mount namespace's) tree */
			w->done = 1;
			return 1;
		}
		w->dentry = read_ptr(mnt, OFF_MOUNT_MOUNTPOINT);
		w->mnt = up;
		return 0;
	}
	off = w->off;
	if (off >= PATH_BUDGET)
		return 1;
	name = read_ptr(dentry, OFF_DENTRY_NAME);
	n = bpf_probe_read_kernel_str(&e->data[off & (EXEC_DATA_HALF - 1)], NAME_CAP,
				      (void *)name);
	if (n <= 0)
		return 1;
	w->off = off + n;
	w->dentry = parent;
	return 0;
}

/*
 * Write the components of a path (leaf first, each NUL-terminated) into the
 * scratch record at off; user space reverses them. Returns the new offset;
 * sets *truncated when the walk did not reach the root.
 */
static __always_inline u32 write_path(struct exec_event *e, u32 off, kptr_t dentry,
				      kptr_t vfsmnt, bool *truncated)
{
	u32 zero = 0;
	struct path_walk *w = path_walks.lookup(&zero);

	*truncated = true;
	if (!w)
		return off;
	w->dentry = dentry;
	w->mnt = vfsmnt - OFF_MOUNT_MNT;  /* struct mount embeds the vfsmount */
	w->off = off;
	w->done = 0;
	/*
	 * Unrolled: 6.1's verifier refuses this loop as a "back-edge" (its CFG
	 * check does not allow a loop to close right after a helper call; 6.18's
	 * does), and bcc cannot build bpf_loop() callbacks.
	 */
#pragma unroll
	for (int i = 0; i < PATH_DEPTH_MAX; i++) {
		if (path_step(w, e))
			break;
	}
	*truncated = !w->done;
	return w->off;
}

/* sched_process_exec(struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm) */
RAW_TRACEPOINT_PROBE(sched_process_exec)
{
	kptr_t task = ctx->args[0], bprm = ctx->args[2], cred, file, fs, mm;
	u64 arg_start, arg_end, total;
	u32 cpu = bpf_get_smp_processor_id(), off, args_len, size;
	struct exec_event *e;
	bool trunc;

	if (is_ignored(read_u32(task, OFF_TASK_TGID)))
		return 0;
	e = exec_scratch.lookup(&cpu);
	if (!e)
		return 0;

	e->hdr.kind = EVENT_EXEC;
	e->hdr.ktime_ns = bpf_ktime_get_boot_ns();
	fill_task_ids(&e->task, task);
	e->flags = 0;

	cred = read_ptr(task, OFF_TASK_REAL_CRED);
	e->uid = read_u32(cred, OFF_CRED_UID);
	e->euid = read_u32(cred, OFF_CRED_EUID);
	e->gid = read_u32(cred, OFF_CRED_GID);
	e->egid = read_u32(cred, OFF_CRED_EGID);
	e->auid = (u32)-1;
	if (OFF_TASK_LOGINUID >= 0)
		e->auid = read_u32(task, OFF_TASK_LOGINUID);

	/* binary: the file being executed (after #! resolution) */
	file = read_ptr(bprm, OFF_BINPRM_FILE);
	off = write_path(e, 0, read_ptr(file, OFF_FILE_PATH_DENTRY),
			 read_ptr(file, OFF_FILE_PATH_MNT), &trunc);
	if (trunc)
		e->flags |= EXEC_BINARY_TRUNCATED;
	e->binary_len = off;

	/* cwd */
	fs = read_ptr(task, OFF_TASK_FS);
	off = write_path(e, off, read_ptr(fs, OFF_FS_PWD_DENTRY), read_ptr(fs, OFF_FS_PWD_MNT),
			 &trunc);
	if (trunc)
		e->flags |= EXEC_CWD_TRUNCATED;
	e->cwd_len = off - e->binary_len;

	/* argv, from the new image's memory (just written by the kernel) */
	mm = read_ptr(task, OFF_TASK_MM);
	arg_start = read_u64(mm, OFF_MM_ARG_START);
	arg_end = read_u64(mm, OFF_MM_ARG_END);
	total = arg_end > arg_start ? arg_end - arg_start : 0;
	e->args_total = total;
	args_len = total;
	if (args_len > ARGS_MAX) {
		args_len = ARGS_MAX;
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
	if (events.ringbuf_output(e, size, wakeup_flag(size)))
		count_drop(DROP_EXEC);
	return 0;
}

/* sched_process_exit(struct task_struct *p[, bool group_dead]) */
RAW_TRACEPOINT_PROBE(sched_process_exit)
{
	kptr_t task = ctx->args[0], signal;
	u32 tgid = read_u32(task, OFF_TASK_TGID);
	struct exit_event *e;

	/* one event per thread group: only its last thread reports */
#if HAVE_GROUP_DEAD
	if (!(u8)ctx->args[1])
		return 0;
#else
	struct exit_claim key = {};
	u8 one = 1;
	long err;

	if (read_u32(read_ptr(task, OFF_TASK_SIGNAL), OFF_SIGNAL_LIVE) != 0)
		return 0;
	key.tgid = tgid;
	key.start_ns = read_u64(read_ptr(task, OFF_TASK_GROUP_LEADER), OFF_TASK_START_BOOTTIME);
	err = exit_claims.insert(&key, &one);
	if (err == -EEXIST)
		return 0;  /* another thread of the group claimed the exit */
	if (err)
		count_drop(DROP_EXIT_CLAIM);
#endif
	if (is_ignored(tgid)) {
		ignored.delete(&tgid);
		return 0;
	}
	e = events.ringbuf_reserve(sizeof(*e));
	if (!e) {
		count_drop(DROP_EXIT);
		return 0;
	}
	e->hdr.kind = EVENT_EXIT;
	e->hdr.size = sizeof(*e);
	e->hdr.ktime_ns = bpf_ktime_get_boot_ns();
	fill_task_ids(&e->task, task);
	signal = read_ptr(task, OFF_TASK_SIGNAL);
	e->exit_status = read_u32(task, OFF_TASK_EXIT_CODE);
	if (read_u32(signal, OFF_SIGNAL_FLAGS) & SIGNAL_GROUP_EXIT)
		e->exit_status = read_u32(signal, OFF_SIGNAL_GROUP_EXIT_CODE);
	e->pad = 0;
	events.ringbuf_submit(e, wakeup_flag(sizeof(*e)));
	return 0;
}

/* sched_process_fork(struct task_struct *parent, struct task_struct *child) */
RAW_TRACEPOINT_PROBE(sched_process_fork)
{
	kptr_t parent = ctx->args[0], child = ctx->args[1];
	u32 ptgid = read_u32(parent, OFF_TASK_TGID);
	u32 ctgid = read_u32(child, OFF_TASK_TGID);
	struct fork_event *e;
	u8 one = 1;

	/* a new thread is not a new process */
	if (read_u32(child, OFF_TASK_PID) != ctgid)
		return 0;
	if (is_ignored(ptgid)) {
		ignored.update(&ctgid, &one);
		return 0;
	}
	e = events.ringbuf_reserve(sizeof(*e));
	if (!e) {
		count_drop(DROP_FORK);
		return 0;
	}
	e->hdr.kind = EVENT_FORK;
	e->hdr.size = sizeof(*e);
	e->hdr.ktime_ns = bpf_ktime_get_boot_ns();
	fill_task_ids(&e->task, child);
	events.ringbuf_submit(e, wakeup_flag(sizeof(*e)));
	return 0;
}

#if !HAVE_GROUP_DEAD
/*
 * sched_process_free(struct task_struct *p): a group leader's task is freed,
 * its group's claim can go. Only a real leader: the old leader that
 * de_thread() replaced keeps the tgid but not the leadership.
 */
RAW_TRACEPOINT_PROBE(sched_process_free)
{
	kptr_t task = ctx->args[0];
	struct exit_claim key = {};

	if (read_ptr(task, OFF_TASK_GROUP_LEADER) != task)
		return 0;
	key.tgid = read_u32(task, OFF_TASK_TGID);
	key.start_ns = read_u64(task, OFF_TASK_START_BOOTTIME);
	exit_claims.delete(&key);
	return 0;
}
#endif
