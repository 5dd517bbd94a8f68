// SPDX-License-Identifier: GPL-2.0
/*
 * User space of the floor consumer: load floor.bpf.o, count records per kind
 * and, for exec and exit, per parent pid (bench/storm.py finds its spawners'
 * children by their ppid), until SIGINT or SIGTERM; then drain the ring and
 * print the counts on stdout:
 *
 *   records exec=N exit=N fork=N drops=N
 *   ppid PID exec=N exit=N        (one line per parent with >= 10 events)
 *
 * Usage: floor batched|per-record [POLL_MS]
 *   batched:    records are submitted without a wakeup (until wakeup_bytes
 *               are queued) and the ring is drained every POLL_MS (25, the
 *               collector's capture.poll_interval_ms);
 *   per-record: the kernel's default wakeup, the reader blocks in epoll.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <bpf/libbpf.h>
#include <bpf/bpf.h>
#include "floor.h"
#include "floor.skel.h"

#define SLOTS 65536 /* open addressing on ppid; power of two */

struct slot { __u32 ppid; __u64 exec, exit; };

static struct slot table[SLOTS];
static __u64 count[4];
static volatile sig_atomic_t stop;

static void on_signal(int sig) { (void)sig; stop = 1; }

static int on_record(void *ctx, void *data, size_t size)
{
	const struct floor_record *r = data;
	__u32 i;

	(void)ctx;
	if (size < sizeof(*r) || r->kind > FLOOR_FORK)
		return 0;
	count[r->kind]++;
	if (r->kind == FLOOR_FORK)
		return 0;
	for (i = (r->ppid * 2654435761u) & (SLOTS - 1);; i = (i + 1) & (SLOTS - 1)) {
		if (table[i].ppid == r->ppid || table[i].ppid == 0) {
			table[i].ppid = r->ppid;
			if (r->kind == FLOOR_EXEC)
				table[i].exec++;
			else
				table[i].exit++;
			return 0;
		}
	}
}

static __u64 kernel_drops(struct floor_bpf *skel)
{
	int ncpu = libbpf_num_possible_cpus();
	__u64 *v = calloc(ncpu, sizeof(*v)), sum = 0;
	__u32 key = 0;
	int i;

	if (v && bpf_map_lookup_elem(bpf_map__fd(skel->maps.drops), &key, v) == 0)
		for (i = 0; i < ncpu; i++)
			sum += v[i];
	free(v);
	return sum;
}

int main(int argc, char **argv)
{
	struct floor_bpf *skel;
	struct ring_buffer *rb;
	int batched, poll_ms, i, err;

	if (argc < 2 || (strcmp(argv[1], "batched") && strcmp(argv[1], "per-record"))) {
		fprintf(stderr, "usage: floor batched|per-record [POLL_MS]\n");
		return 2;
	}
	batched = strcmp(argv[1], "batched") == 0;
	poll_ms = argc > 2 ? atoi(argv[2]) : 25;
	skel = floor_bpf__open();
	if (!skel) {
		fprintf(stderr, "floor: open failed: %s\n", strerror(errno));
		return 1;
	}
	skel->rodata->batched = batched;
	err = floor_bpf__load(skel);
	if (!err)
		err = floor_bpf__attach(skel);
	if (err) {
		fprintf(stderr, "floor: load/attach failed: %d\n", err);
		return 1;
	}
	rb = ring_buffer__new(bpf_map__fd(skel->maps.events), on_record, NULL, NULL);
	if (!rb) {
		fprintf(stderr, "floor: ring_buffer__new failed\n");
		return 1;
	}
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	fprintf(stderr, "floor: attached (%s)\n", argv[1]);
	while (!stop) {
		err = ring_buffer__poll(rb, batched ? poll_ms : 100);
		if (err < 0 && err != -EINTR)
			break;
		if (batched)
			ring_buffer__consume(rb);
	}
	ring_buffer__consume(rb);
	printf("records exec=%llu exit=%llu fork=%llu drops=%llu\n",
	       (unsigned long long)count[FLOOR_EXEC], (unsigned long long)count[FLOOR_EXIT],
	       (unsigned long long)count[FLOOR_FORK], (unsigned long long)kernel_drops(skel));
	for (i = 0; i < SLOTS; i++)
		if (table[i].ppid && table[i].exec + table[i].exit >= 10)
			printf("ppid %u exec=%llu exit=%llu\n", table[i].ppid,
			       (unsigned long long)table[i].exec, (unsigned long long)table[i].exit);
	ring_buffer__free(rb);
	floor_bpf__destroy(skel);
	return 0;
}
