/*
 * PID 1 of the bcc guest (tests/support/bcc_guest.py): load the 9p modules,
 * mount this host's root read-only over virtio-9p, give it a writable /tmp
 * and the results folder, chroot into it and run $BCC_GUEST_SCRIPT with
 * /bin/sh. So the guest runs the host's own files (Python, venv, bcc, the
 * header tree) on the guest's kernel. Static: the initramfs holds nothing else.
 * cache=loose: the host root is read-only and does not change while the guest runs,
 * so the guest may cache its files (clang reads thousands of headers per compile).
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/reboot.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *modules[] = {
	"virtio_ring", "virtio", "virtio_pci_modern_dev", "virtio_pci_legacy_dev", "virtio_pci",
	"9pnet", "9pnet_virtio", "netfs", "fscache", "9p",
};

static void die(const char *what)
{
	perror(what);
	reboot(RB_POWER_OFF);
	exit(1);
}

#define MAX_RO_SHARES 2

/* mkdir -p; a directory that exists (or a read-only parent that holds it) is fine */
static void mkdir_p(const char *dir)
{
	char buf[256];
	snprintf(buf, sizeof(buf), "%s", dir);
	for (char *p = buf + 1; *p; p++) {
		if (*p == '/') {
			*p = '\0';
			mkdir(buf, 0755);
			*p = '/';
		}
	}
	mkdir(buf, 0755);
}

static void must_mount(const char *src, const char *dst, const char *type, unsigned long flags,
		       const char *data)
{
	if (mount(src, dst, type, flags, data))
		die(dst);
}

int main(void)
{
	char path[256];
	const char *script = getenv("BCC_GUEST_SCRIPT");
	const char *out = getenv("BCC_GUEST_OUT");
	pid_t pid;
	int status = 1;

	for (size_t i = 0; i < sizeof(modules) / sizeof(modules[0]); i++) {
		snprintf(path, sizeof(path), "/modules/%s.ko", modules[i]);
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0 || syscall(SYS_finit_module, fd, "", 0))
			die(path);
		close(fd);
	}
	mkdir("/host", 0755);
	must_mount("hostroot", "/host", "9p", MS_RDONLY, "trans=virtio,version=9p2000.L,msize=512000,cache=loose");
	must_mount("proc", "/host/proc", "proc", 0, NULL);
	must_mount("sysfs", "/host/sys", "sysfs", 0, NULL);
	must_mount("devtmpfs", "/host/dev", "devtmpfs", 0, NULL);
	must_mount("tmpfs", "/host/tmp", "tmpfs", 0, "size=1g");
	must_mount("tmpfs", "/host/run", "tmpfs", 0, NULL);
	/* the checkout and the cache again, read-only, over the guest's own /tmp: a
	 * checkout under /tmp (a CI clone) would be hidden by it otherwise */
	for (int i = 0; i < MAX_RO_SHARES; i++) {
		char name[32], tag[8];
		snprintf(name, sizeof(name), "BCC_GUEST_RO%d", i);
		const char *ro = getenv(name);
		if (!ro)
			continue;
		snprintf(path, sizeof(path), "/host%s", ro);
		mkdir_p(path);
		snprintf(tag, sizeof(tag), "ro%d", i);
		must_mount(tag, path, "9p", MS_RDONLY,
			   "trans=virtio,version=9p2000.L,msize=512000,cache=loose");
	}
	if (out) {
		snprintf(path, sizeof(path), "/host%s", out);
		mkdir_p(path);
		must_mount("out", path, "9p", 0, "trans=virtio,version=9p2000.L");
	}
	/* as switch_root does: the host's root becomes "/" of the mount tree, so paths
	 * walked up to the mount tree's root (the collector's binary/cwd) have no /host */
	if (chdir("/host") || mount(".", "/", NULL, MS_MOVE, NULL) || chroot(".") || chdir("/"))
		die("switch root");
	mount("cgroup2", "/sys/fs/cgroup", "cgroup2", 0, NULL);
	pid = fork();
	if (pid == 0) {
		execl("/bin/sh", "sh", script ? script : "/nonexistent", (char *)NULL);
		die("exec");
	}
	waitpid(pid, &status, 0);
	printf("BCC_GUEST exit %d\n", WIFEXITED(status) ? WEXITSTATUS(status) : 128);
	fflush(stdout);
	sync();
	reboot(RB_POWER_OFF);
	return 0;
}
