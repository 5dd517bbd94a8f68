/*
 * Threads that end at the same moment, for the one-exit-per-group tests.
 *
 *   exit_together group N CODE    N threads spin; main calls exit_group(CODE)
 *                                 while they run, so the kernel ends them all
 *   exit_together barrier N       N threads and main meet at a barrier, then
 *                                 every one calls the exit syscall (pthread_exit
 *                                 without libc's clean-up); the last one to go
 *                                 ends the group, with status 0
 *
 * Threads are spread over the CPUs and the barrier spins (no futex sleep and
 * wake-up one by one), so threads on different CPUs enter do_exit within
 * nanoseconds of each other: that is what makes several of them see
 * signal->live == 0 at the exit tracepoint.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static atomic_int arrived;
static int everyone;
static int ncpu;

static void pin(long i)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(i % ncpu, &set);
	sched_setaffinity(0, sizeof(set), &set);
}

static void *spin(void *arg)
{
	pin((long)arg);
	atomic_fetch_add(&arrived, 1);
	for (;;)
		sched_yield();
	return NULL;
}

static void *meet(void *arg)
{
	pin((long)arg);
	atomic_fetch_add(&arrived, 1);
	while (atomic_load(&arrived) < everyone)
		sched_yield();
	syscall(SYS_exit, 0);
	return NULL;
}

int main(int argc, char **argv)
{
	int n = argc > 2 ? atoi(argv[2]) : 16;
	pthread_t t;

	if (argc < 3)
		return 2;
	ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	if (ncpu < 1)
		ncpu = 1;
	everyone = n + 1;
	if (strcmp(argv[1], "group") == 0) {
		for (long i = 0; i < n; i++)
			pthread_create(&t, NULL, spin, (void *)(i + 1));
		while (atomic_load(&arrived) < n)
			sched_yield();
		syscall(SYS_exit_group, argc > 3 ? atoi(argv[3]) : 0);
	}
	for (long i = 0; i < n; i++)
		pthread_create(&t, NULL, meet, (void *)(i + 1));
	meet((void *)0);
	return 0;
}
