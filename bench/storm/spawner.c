/*
 * One storm worker: posix_spawn /bin/true and reap it, as fast as it can, for
 * argv[1] seconds, then print how many processes it spawned (and how many
 * spawns failed). Its pid is the parent pid of every process it spawns: that is
 * how bench/storm.py tells the storm's processes (the markers) from everything
 * else on the machine; the other benches pass a MARKER argument for /bin/true.
 */
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>

extern char **environ;

static double now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	char *args[] = {"/bin/true", argc > 2 ? argv[2] : NULL, NULL};
	double end;
	long n = 0, failed = 0;

	if (argc != 2 && argc != 3) {
		fprintf(stderr, "usage: spawner SECONDS [MARKER]\n");
		return 2;
	}
	end = now() + atof(argv[1]);
	while (now() < end) {
		pid_t pid;

		if (posix_spawn(&pid, "/bin/true", NULL, NULL, args, environ) != 0) {
			failed++;
			continue;
		}
		waitpid(pid, NULL, 0);
		n++;
	}
	printf("%ld %ld\n", n, failed);
	return 0;
}
