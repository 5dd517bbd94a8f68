/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The raw record layout shared by the BPF programs and user space.
 *
 * Every record starts with `struct event_header`; `kind` numbers are fixed
 * and never reused, so an old reader can skip what it does not know.
 * collector/probe/layout.py mirrors these structs; tests/test_layout.py
 * checks the mirror against the BTF of the compiled object.
 *
 * Only fixed-size plain types here: this file is included by BPF C (with
 * vmlinux.h) and its sizes are read by Python.
 */
#ifndef PROCESS_COLLECTOR_PROCESS_H
#define PROCESS_COLLECTOR_PROCESS_H

#define TASK_COMM_LEN 16

/*
 * Sizes of the variable-length tail of an exec record (binary path, cwd,
 * argv). An enum, not #defines, so the numbers reach the object's BTF and
 * tests/test_layout.py can compare them with layout.py.
 */
enum record_limits {
	EXEC_DATA_LEN = 65536,       /* power of two: offsets are masked */
	EXEC_DATA_HALF = EXEC_DATA_LEN / 2,
	ARGS_CAP = 32768,            /* captured argv is at most ARGS_CAP - 1 bytes */
	PATH_DEPTH_MAX = 64,         /* path components walked per path */
	PATH_BUDGET = 12288,         /* bytes of path text per record */
	NAME_CAP = 256,              /* bytes of one path component */
};

enum event_kind {
	EVENT_EXEC = 1,
	EVENT_EXIT = 2,
	EVENT_FORK = 3,
};

/* exec record flags */
enum exec_flags {
	EXEC_ARGS_TRUNCATED = 1 << 0,
	EXEC_BINARY_TRUNCATED = 1 << 1,
	EXEC_CWD_TRUNCATED = 1 << 2,
	EXEC_ARGS_UNREADABLE = 1 << 3,
};

/* indexes of the per-CPU drop counters */
enum drop_reason {
	DROP_EXEC = 0,
	DROP_EXIT = 1,
	DROP_FORK = 2,
	/*
	 * Not a lost record: an exit reported without a claim, because the
	 * claim map was full (kernels without group_dead, see handle_exit_claim).
	 * Another thread of that group may report the same exit again.
	 */
	DROP_EXIT_CLAIM = 3,
	/*
	 * Events no copy of a program handled (the copies variant, see
	 * bpf/process.bpf.c: every copy was skipped by the kernel's recursion
	 * guard), counted by the tracepoint's last program, the checker.
	 */
	DROP_EXEC_MISSED = 4,
	DROP_EXIT_MISSED = 5,
	DROP_FORK_MISSED = 6,
	DROP_REASONS = 7,
};

struct event_header {
	__u32 kind;        /* enum event_kind */
	__u32 size;        /* bytes of the whole record */
	__u64 ktime_ns;    /* CLOCK_BOOTTIME at the event */
};

/* Identity of the thread group an event is about. */
struct task_ids {
	__u32 pid;         /* thread-group id */
	__u32 tid;
	__u32 ppid;        /* real parent's thread-group id */
	__u32 pad;
	__u64 start_ns;    /* thread group start, CLOCK_BOOTTIME */
	__u64 cgroup_id;
	char comm[TASK_COMM_LEN];
};

/*
 * EVENT_EXEC. `data` holds, back to back: the binary path components
 * (leaf first, each NUL-terminated: binary_len bytes), the cwd components
 * (same form: cwd_len bytes), then argv as NUL-separated strings
 * (args_len bytes). Only `size` bytes are sent.
 */
struct exec_event {
	struct event_header hdr;
	struct task_ids task;
	__u32 uid, euid, gid, egid;
	__u32 auid;
	__u32 flags;       /* enum exec_flags */
	__u32 binary_len;
	__u32 cwd_len;
	__u32 args_len;
	__u32 args_total;  /* bytes of argv in the process (before capping) */
	char data[EXEC_DATA_LEN];
};

/* EVENT_EXIT: the last thread of a thread group exited. */
struct exit_event {
	struct event_header hdr;
	struct task_ids task;
	__u32 exit_status; /* wait(2) status: code << 8 | core 0x80 | signal */
	__u32 pad;
};

/* EVENT_FORK: a new thread group (not a new thread) was created. */
struct fork_event {
	struct event_header hdr;
	struct task_ids task;   /* the child */
};

/*
 * Read-only settings, written by user space before load, field by field at
 * the offsets the object's BTF gives (collector/probe/rodata.py), so a new
 * `const volatile` in the object never shifts or clobbers them.
 */
struct collector_config {
	__u32 args_max;    /* argv bytes to capture, <= ARGS_CAP */
	__u32 wakeup_bytes;/* wake the reader once this much data is queued */
	__u32 self_tgid;   /* the collector itself (ignored when ignore_self) */
	__u32 ignore_self;
};

#endif
