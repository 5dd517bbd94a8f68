/* SPDX-License-Identifier: GPL-2.0 */
/* The record of the floor consumer (bench/storm/floor.bpf.c). */
#ifndef STORM_FLOOR_H
#define STORM_FLOOR_H

enum floor_kind { FLOOR_EXEC = 1, FLOOR_EXIT = 2, FLOOR_FORK = 3 };

struct floor_record {
	__u32 kind;
	__u32 pid;
	__u32 ppid;
	__u32 pad;
	__u64 ktime_ns;
	char comm[16];
};

#endif
