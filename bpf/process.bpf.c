// SPDX-License-Identifier: GPL-2.0
/*
 * Process lifecycle probes: exec, exit (once per thread group) and fork
 * (held back until it carries news: see "Forks held back"), on BTF-enabled
 * tracepoints, sent to user space through one ring buffer.
 *
 * Everything is read at the event, in the kernel: a short-lived process is
 * gone from /proc before user space could look. Kernel structs are read with
 * CO-RE, so the one compiled object runs on any kernel with BTF (5.10 on).
 *
 * Where kernels differ, the object carries alternative programs and user
 * space picks one of each pair before load (bpf_program__set_autoload, from
 * the running kernel's BTF and feature probes: collector/probe/features.py):
 *   exec: handle_exec (paths walked with bpf_loop, 5.17+) or
 *         handle_exec_bounded (a bounded loop the 5.10 verifier accepts);
 *   exit: handle_exit (the tracepoint's group_dead argument, recent kernels)
 *         or handle_exit_claim + release_exit_claim (older kernels).
 *   runs: single (one program per tracepoint) or copies (COPIES programs
 *         per tracepoint and a checker, see "Copies" below).
 * A program that is not loaded is never verified, so a construct an old
 * verifier refuses may live in the program it does not load.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "process.h"

char LICENSE[] SEC("license") = "GPL";

#define SIGNAL_GROUP_EXIT 0x00000004
#define PF_EXITING 0x00000004
#define EEXIST 17
/* programs per tracepoint in the copies variant (the checker comes on top) */
#define COPIES 3
/* fork records held back at once (pending_forks); beyond it they are sent at the fork */
#define PENDING_FORKS_MAX 8192

/* struct mount embeds the struct vfsmount that paths point to */
#define real_mount(vfsmnt) \
	((struct mount *)((void *)(vfsmnt) - bpf_core_field_offset(struct mount, mnt)))

/* Every field is written by user space before load (defaults: collector/config.py). */
const volatile struct collector_config cfg = {};

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
 * Slot cpu * COPIES + copy: on kernels where tracepoints run preemptible
 * (migration off) a preempted program still owns its slot, and only a
 * different copy can run on that CPU meanwhile (the kernel skips a program
 * that is already running there), so each (CPU, copy) slot has one writer.
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

/*
 * Exit claims (kernels without group_dead): see handle_exit_claim. Sized by
 * user space: a real size only when the claim programs are loaded.
 */
struct exit_claim {
	__u32 tgid;
	__u32 pad;
	__u64 start_ns;    /* the group's start (leader's start_boottime) */
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1);
	__type(key, struct exit_claim);
	__type(value, __u8);
} exit_claims SEC(".maps");

/*
 * Fork records held back (see "Forks held back" below): child tgid -> the
 * record as it was at the fork. Full: the record is sent at once instead.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, PENDING_FORKS_MAX);
	__type(key, __u32);
	__type(value, struct fork_event);
} pending_forks SEC(".maps");

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
 * Forks held back.
 *
 * Most new processes exec (or exit) at once, and their fork record tells
 * user space nothing the exec does not: the parent it would name is the
 * image the exec's ppid runs now. So the fork record waits in pending_forks
 * and is sent only when it carries news:
 *   - at the child's exit, when it never exec'd (a subshell, a worker): it
 *     runs its forker's image, which only the fork record says;
 *   - at the child's exec, when its real parent is no longer the forker's
 *     image: the forker exited (the child was reparented), is exiting, or
 *     exec'd since the fork (its self_exec_id moved past the child's
 *     parent_exec_id, which copy_process set from it);
 *   - when the child itself forks: its children's records name it;
 *   - at the child's exec when the ring refused the exec record (counted):
 *     the exit that follows then names the image the fork record gives.
 * Otherwise it is dropped unsent. A sent record is the one saved at the
 * fork (its time and ids), ahead of the record that sent it, so user space
 * sees the same facts in the same order, only later.
 *
 * At exec the decision is taken after the exec record is in the ring, in a
 * slot reserved before it: a forker whose exit record got into the ring
 * before the exec record had set PF_EXITING before that (do_exit sets it
 * first), and the ring's lock orders the two, so the check sees it.
 */
static __always_inline void send_pending_fork(__u32 tgid)
{
	struct fork_event *saved = bpf_map_lookup_elem(&pending_forks, &tgid);

	if (!saved)
		return;
	if (bpf_ringbuf_output(&events, saved, sizeof(*saved), wakeup_flag()))
		count_drop(DROP_FORK);
	bpf_map_delete_elem(&pending_forks, &tgid);
}

/* The exec'ing task's forker still runs the image it forked from. */
static __always_inline bool forker_unchanged(struct task_struct *task, __u32 forker)
{
	struct task_struct *parent = BPF_CORE_READ(task, real_parent);

	if (BPF_CORE_READ(parent, tgid) != forker)
		return false;
	if (BPF_CORE_READ(parent, flags) & PF_EXITING)
		return false;
	return BPF_CORE_READ(parent, self_exec_id) == BPF_CORE_READ(task, parent_exec_id);
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

/* one walk per copy (see exec_scratch): key = copy */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, COPIES);
	__type(key, __u32);
	__type(value, struct path_walk);
} path_walks SEC(".maps");

/*
 * One step of a path walk: write one component, or cross one mount.
 * Walks dentries up to the mount root, then crosses to the parent mount,
 * like d_path() but without the helper (bpf_d_path is not allowed on
 * tracepoints). Returns 1 when the walk is over.
 */
static __always_inline long path_step_body(struct path_walk *w, struct exec_event *e)
{
	struct dentry *dentry, *mnt_root, *parent;
	struct mount *mnt, *up;
	const unsigned char *name;
	__u64 at;
	__u32 off;
	long n;

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
	/*
	 * Mask in a register right before the call. Without the barrier clang
	 * drops the mask (the budget check already bounds off) and keeps off in
	 * a stack slot across the reads above; 6.1's verifier does not carry the
	 * bound through that spill ("R1 unbounded memory access").
	 */
	at = off;
	asm volatile("" : "+r"(at));
	at &= EXEC_DATA_HALF - 1;
	n = bpf_probe_read_kernel_str(&e->data[at], NAME_CAP, name);
	if (n <= 0)
		return 1;
	w->off = off + n;
	w->dentry = parent;
	return 0;
}

/* The bpf_loop callback (5.17+): the state lives in maps, looked up per step. */
struct walk_keys {
	__u32 walk;     /* copy: key of path_walks */
	__u32 slot;     /* key of exec_scratch */
};

static long path_step(__u32 i, struct walk_keys *k)
{
	struct path_walk *w = bpf_map_lookup_elem(&path_walks, &k->walk);
	struct exec_event *e = bpf_map_lookup_elem(&exec_scratch, &k->slot);

	if (!w || !e)
		return 1;
	return path_step_body(w, e);
}

/*
 * Write the components of a path, leaf first, each NUL-terminated, into the
 * CPU's scratch record at off; user space reverses them. Returns the new
 * offset; sets *truncated when the walk did not reach the root.
 *
 * bounded=false walks with bpf_loop (one verification of the step);
 * bounded=true with PATH_DEPTH_MAX steps in line, which verifiers before
 * 5.17 accept (they check every step). The two produce the same
 * bytes and flags: the step is the same code.
 */
static __always_inline __u32 write_path(struct exec_event *e, __u32 off, struct dentry *dentry,
					struct vfsmount *vfsmnt, bool *truncated, bool bounded,
					__u32 copy, __u32 slot)
{
	struct walk_keys k = { .walk = copy, .slot = slot };
	__u32 i;
	struct path_walk *w = bpf_map_lookup_elem(&path_walks, &k.walk);

	*truncated = true;
	if (!w)
		return off;
	w->dentry = dentry;
	w->mnt = real_mount(vfsmnt);
	w->off = off;
	w->done = 0;
	if (bounded) {
		/*
		 * Unrolled: verifiers before 5.17 also refuse a loop whose back
		 * edge is a fall-through, and clang rotates this loop so that it
		 * is ("back-edge from insn 374 to 375" on 5.10).
		 */
#pragma clang loop unroll(full)
		for (i = 0; i < PATH_DEPTH_MAX; i++)
			if (path_step_body(w, e))
				break;
	} else {
		bpf_loop(PATH_DEPTH_MAX, path_step, &k, 0);
	}
	*truncated = !w->done;
	return w->off;
}

/* The exec record, behind the child's held-back fork record if that has news. */
static __always_inline bool output_exec(struct exec_event *e, __u32 size)
{
	if (bpf_ringbuf_output(&events, e, size, wakeup_flag())) {
		count_drop(DROP_EXEC);
		return false;
	}
	return true;
}

static __always_inline int send_exec(struct task_struct *task, struct exec_event *e, __u32 size)
{
	__u32 tgid = e->task.pid, forker;
	struct fork_event *saved = bpf_map_lookup_elem(&pending_forks, &tgid);
	struct fork_event *slot;

	if (!saved) {
		output_exec(e, size);
		return 0;
	}
	/* straight-line paths, one per outcome: older verifiers lose track of a
	 * reservation that is held or not depending on an earlier branch */
	forker = saved->task.ppid;
	slot = bpf_ringbuf_reserve(&events, sizeof(*slot), 0);
	if (!slot) {
		count_drop(DROP_FORK);
		bpf_map_delete_elem(&pending_forks, &tgid);
		output_exec(e, size);
		return 0;
	}
	__builtin_memcpy(slot, saved, sizeof(*slot));
	bpf_map_delete_elem(&pending_forks, &tgid);
	/* an exec the ring refused makes the fork news: the exit will need it */
	if (output_exec(e, size) && forker_unchanged(task, forker))
		bpf_ringbuf_discard(slot, BPF_RB_NO_WAKEUP);
	else
		bpf_ringbuf_submit(slot, wakeup_flag());
	return 0;
}

static __always_inline int record_exec(struct task_struct *task, struct linux_binprm *bprm,
				       bool bounded, __u32 copy)
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
	cpu = cpu * COPIES + copy;
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
	off = write_path(e, 0, BPF_CORE_READ(file, f_path.dentry),
			 BPF_CORE_READ(file, f_path.mnt), &trunc, bounded, copy, cpu);
	if (trunc)
		e->flags |= EXEC_BINARY_TRUNCATED;
	e->binary_len = off;

	/* cwd */
	fs = BPF_CORE_READ(task, fs);
	off = write_path(e, off, BPF_CORE_READ(fs, pwd.dentry),
			 BPF_CORE_READ(fs, pwd.mnt), &trunc, bounded, copy, cpu);
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
	return send_exec(task, e, size);
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(handle_exec, struct task_struct *task, pid_t old_pid, struct linux_binprm *bprm)
{
	return record_exec(task, bprm, false, 0);
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(handle_exec_bounded, struct task_struct *task, pid_t old_pid,
	     struct linux_binprm *bprm)
{
	return record_exec(task, bprm, true, 0);
}

/* Send the exit record of task's thread group (the caller decided it is the one). */
static __always_inline int record_exit(struct task_struct *task)
{
	struct exit_event *e;
	__u32 tgid = BPF_CORE_READ(task, tgid);

	if (is_ignored(tgid)) {
		bpf_map_delete_elem(&ignored, &tgid);
		return 0;
	}
	send_pending_fork(tgid);  /* it never exec'd: it ran its forker's image */
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

/* Kernels whose tracepoint passes group_dead: only the group's last thread reports. */
SEC("tp_btf/sched_process_exit")
int BPF_PROG(handle_exit, struct task_struct *task, bool group_dead)
{
	if (!group_dead)
		return 0;
	return record_exit(task);
}

/*
 * Kernels without group_dead: one exit per thread group by an atomic claim.
 *
 * do_exit() runs atomic_dec_and_test(&signal->live) and only later fires
 * this tracepoint, so `signal->live == 0` alone is not enough: when threads
 * exit together, several of them can reach the tracepoint after the last
 * decrement and all see 0. Each of those threads is a correct witness that
 * the group is dead (live never rises again once it is 0: a thread that
 * could clone has not decremented yet), but only one may report. So every
 * witness tries to insert the key (tgid, group start time) with BPF_NOEXIST:
 * the hash map's insert is atomic, exactly one succeeds and reports, the
 * others get -EEXIST and stay silent.
 *
 * Why a claim can never swallow another process's exit: the key holds the
 * group's start time (the leader's start_boottime, which de_thread copies to
 * an exec'ing thread), so a new group that reuses the tgid has a different
 * key even if an old claim were still there.
 *
 * Why the map stays bounded: release_exit_claim deletes the claim at
 * sched_process_free of the group leader. That tracepoint fires from an RCU
 * callback queued by release_task() of the leader, and a zombie leader is
 * released only once the thread group is empty (delay_group_leader), that
 * is once every other thread released itself in exit_notify(), after its
 * own exit tracepoint had returned. So when the claim goes, no thread of
 * that group can reach this tracepoint again (and were the key ever looked
 * up later, it could only match this dead group). Claims in the map at any
 * time: groups that are dead but not yet reaped, plus an RCU grace period.
 *
 * When the insert fails for another reason (the map is full), the exit is
 * still reported, rather than lost, and counted as DROP_EXIT_CLAIM: a
 * second witness of that group may then report it too.
 */
static __always_inline int exit_claim_body(struct task_struct *task)
{
	struct exit_claim key = {};
	__u8 one = 1;
	/*
	 * int, not long: up to 6.1 the verifier turns this helper call into a
	 * direct call of the map's update, which returns an int, so only the
	 * low 32 bits of R0 are the error (a 64-bit compare with -EEXIST never
	 * matched there, and every losing witness reported too).
	 */
	int err;

	if (BPF_CORE_READ(task, signal, live.counter) != 0)
		return 0;
	key.tgid = BPF_CORE_READ(task, tgid);
	key.start_ns = BPF_CORE_READ(task, group_leader, start_boottime);
	err = bpf_map_update_elem(&exit_claims, &key, &one, BPF_NOEXIST);
	if (err == -EEXIST)
		return 0;
	if (err)
		count_drop(DROP_EXIT_CLAIM);
	return record_exit(task);
}

SEC("tp_btf/sched_process_exit")
int BPF_PROG(handle_exit_claim, struct task_struct *task)
{
	return exit_claim_body(task);
}

/*
 * The group leader's task is being freed: its group's claim can go. Only a
 * real leader (group_leader == itself): the old leader that de_thread
 * replaced keeps the tgid but not the leadership, and its group lives on.
 */
SEC("tp_btf/sched_process_free")
int BPF_PROG(release_exit_claim, struct task_struct *task)
{
	struct exit_claim key = {};

	if (BPF_CORE_READ(task, group_leader) != task)
		return 0;
	key.tgid = BPF_CORE_READ(task, tgid);
	key.start_ns = BPF_CORE_READ(task, start_boottime);
	bpf_map_delete_elem(&exit_claims, &key);
	return 0;
}

static __always_inline int fork_body(struct task_struct *parent, struct task_struct *child)
{
	struct fork_event rec = {}, *e = &rec;  /* 64 bytes: the stack holds it */
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
	send_pending_fork(ptgid);  /* the child's records will name its parent */
	e->hdr.kind = EVENT_FORK;
	e->hdr.size = sizeof(*e);
	e->hdr.ktime_ns = bpf_ktime_get_boot_ns();
	fill_task_ids(&e->task, child);
	if (bpf_map_update_elem(&pending_forks, &ctgid, e, BPF_ANY) == 0)
		return 0;
	/* no room to hold it back: send it now */
	if (bpf_ringbuf_output(&events, e, sizeof(*e), wakeup_flag()))
		count_drop(DROP_FORK);
	return 0;
}

SEC("tp_btf/sched_process_fork")
int BPF_PROG(handle_fork, struct task_struct *parent, struct task_struct *child)
{
	return fork_body(parent, child);
}

/*
 * Copies (the `runs=copies` variant).
 *
 * Where tracepoints run preemptible (Linux 7.x with full or lazy preemption:
 * tracepoint callbacks run with migration, not preemption, disabled), a
 * program preempted mid-run still holds its per-CPU recursion guard
 * (prog->active), and the kernel SKIPS every other run of that program on
 * that CPU until it finishes, counting it only in recursion_misses: the
 * event of the other task is lost. So each tracepoint gets COPIES programs
 * with one body; a copy the kernel skips leaves the event to the next one.
 * A copy that does run and finds the event already handled returns.
 *
 * Dedup is per task, in task-local storage: the copies attached to one
 * tracepoint run one after another in the context of the task that fired
 * it (preemption pauses that sequence, it never reorders it, and no other
 * task fires a tracepoint for this task), so the first copy that runs sees
 * the event unhandled and marks it; the later ones see the mark. No atomics.
 *   exec: self_exec_id grows by one at every exec, before the tracepoint;
 *         the storage holds the last one reported.
 *   exit: a task exits once; a flag, set by the first copy that runs, which
 *         then makes the group_dead / claim decision exactly as before.
 *   fork: a flag on the child, which forks into being once.
 * The last program of each tracepoint, the checker, only counts
 * DROP_*_MISSED when no copy handled the event: those counters are losses,
 * not skipped copies (a skipped copy is normal here). The checker is tiny,
 * so it is rarely preempted; its own skipped runs are counted by user space
 * from its recursion_misses, as the single programs' are.
 *
 * When the storage cannot be created (out of memory), copy 0 reports
 * anyway (rather than lose the event) and the others stay silent.
 */
struct task_seen {
	__u64 exec_id;     /* self_exec_id of the last exec reported */
	__u8 exit_seen;
	__u8 fork_seen;
	__u8 pad[6];
};

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct task_seen);
} task_seen SEC(".maps");

static __always_inline struct task_seen *seen_of(struct task_struct *task, __u64 flags)
{
	return bpf_task_storage_get(&task_seen, task, 0, flags);
}

static __always_inline int exec_copy(struct task_struct *task, struct linux_binprm *bprm,
				     bool bounded, __u32 copy)
{
	struct task_seen *s = seen_of(task, BPF_LOCAL_STORAGE_GET_F_CREATE);
	__u64 id = BPF_CORE_READ(task, self_exec_id);

	if (!s) {
		if (copy != 0)
			return 0;
		return record_exec(task, bprm, bounded, copy);
	}
	if (s->exec_id == id)
		return 0;
	s->exec_id = id;
	return record_exec(task, bprm, bounded, copy);
}

/* First copy to run for this task: true (and marked); the others: false. */
static __always_inline bool first_copy(struct task_struct *task, bool exit, __u32 copy)
{
	struct task_seen *s = seen_of(task, BPF_LOCAL_STORAGE_GET_F_CREATE);

	if (!s)
		return copy == 0;
	if (exit) {
		if (s->exit_seen)
			return false;
		s->exit_seen = 1;
	} else {
		if (s->fork_seen)
			return false;
		s->fork_seen = 1;
	}
	return true;
}

#define EXEC_COPY(name, bounded, copy)						\
SEC("tp_btf/sched_process_exec")						\
int BPF_PROG(name, struct task_struct *task, pid_t old_pid, struct linux_binprm *bprm) \
{										\
	return exec_copy(task, bprm, bounded, copy);				\
}
EXEC_COPY(handle_exec_c0, false, 0)
EXEC_COPY(handle_exec_c1, false, 1)
EXEC_COPY(handle_exec_c2, false, 2)
EXEC_COPY(handle_exec_bounded_c0, true, 0)
EXEC_COPY(handle_exec_bounded_c1, true, 1)
EXEC_COPY(handle_exec_bounded_c2, true, 2)

SEC("tp_btf/sched_process_exec")
int BPF_PROG(check_exec, struct task_struct *task)
{
	struct task_seen *s = seen_of(task, 0);

	if (is_ignored(BPF_CORE_READ(task, tgid)))
		return 0;
	if (!s || s->exec_id != BPF_CORE_READ(task, self_exec_id))
		count_drop(DROP_EXEC_MISSED);
	return 0;
}

#define EXIT_COPY(copy)								\
SEC("tp_btf/sched_process_exit")						\
int BPF_PROG(handle_exit_c##copy, struct task_struct *task, bool group_dead)	\
{										\
	if (!first_copy(task, true, copy) || !group_dead)			\
		return 0;							\
	return record_exit(task);						\
}
EXIT_COPY(0)
EXIT_COPY(1)
EXIT_COPY(2)

#define EXIT_CLAIM_COPY(copy)							\
SEC("tp_btf/sched_process_exit")						\
int BPF_PROG(handle_exit_claim_c##copy, struct task_struct *task)		\
{										\
	if (!first_copy(task, true, copy))					\
		return 0;							\
	return exit_claim_body(task);						\
}
EXIT_CLAIM_COPY(0)
EXIT_CLAIM_COPY(1)
EXIT_CLAIM_COPY(2)

static __always_inline void check_exit_seen(struct task_struct *task)
{
	struct task_seen *s = seen_of(task, 0);

	if (!s || !s->exit_seen)
		count_drop(DROP_EXIT_MISSED);
}

SEC("tp_btf/sched_process_exit")
int BPF_PROG(check_exit, struct task_struct *task, bool group_dead)
{
	if (group_dead)
		check_exit_seen(task);
	return 0;
}

/* A dead group's witness (live == 0) none of whose copies ran; another witness may report it. */
SEC("tp_btf/sched_process_exit")
int BPF_PROG(check_exit_claim, struct task_struct *task)
{
	if (BPF_CORE_READ(task, signal, live.counter) == 0)
		check_exit_seen(task);
	return 0;
}

#define FORK_COPY(copy)								\
SEC("tp_btf/sched_process_fork")						\
int BPF_PROG(handle_fork_c##copy, struct task_struct *parent, struct task_struct *child) \
{										\
	if (!first_copy(child, false, copy))					\
		return 0;							\
	return fork_body(parent, child);					\
}
FORK_COPY(0)
FORK_COPY(1)
FORK_COPY(2)

SEC("tp_btf/sched_process_fork")
int BPF_PROG(check_fork, struct task_struct *parent, struct task_struct *child)
{
	struct task_seen *s;

	if (BPF_CORE_READ(child, pid) != BPF_CORE_READ(child, tgid))
		return 0;
	s = seen_of(child, 0);
	if (!s || !s->fork_seen)
		count_drop(DROP_FORK_MISSED);
	return 0;
}

/*
 * Never called, never loaded: its argument puts every struct and enum that
 * user space mirrors (bpf/process.h) into the object's BTF, including those
 * the programs only reach through casts, so tests/test_layout.py can check
 * them all (the alignchecker idea of Tetragon, inside the shipped object).
 */
struct abi_types {
	struct event_header hdr;
	struct task_ids ids;
	struct exec_event exec;
	struct exit_event exit;
	struct fork_event fork;
	struct collector_config config;
	enum event_kind kind;
	enum exec_flags flags;
	enum drop_reason drop;
	enum record_limits limits;
};

__attribute__((noinline)) int abi_types(struct abi_types *all)
{
	return 0;
}
