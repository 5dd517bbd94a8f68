// SPDX-License-Identifier: GPL-2.0
/*
 * Struct member offsets as the kernel headers lay them out, for the bcc
 * backend on kernels without BTF (collector/probe/bcc.py: header_offsets).
 *
 * One function per member returns offsetof(); bcc compiles it and user
 * space reads the constant from the bytecode, so nothing is loaded. The
 * member list is passed as -DMEMBERS=MEMBER(NAME,struct,path)... from
 * collector/probe/offsets.py (its one owner), the headers as -include flags.
 */
#define MEMBER(name, type, path) \
	int off_##name(void *ctx) { return __builtin_offsetof(struct type, path); }

/* fs/mount.h is private to the kernel tree: its stable prefix, from user space */
MOUNT_PREFIX

MEMBERS

/* the one optional member: task_struct.loginuid exists with CONFIG_AUDIT */
int off_TASK_LOGINUID(void *ctx)
{
#ifdef CONFIG_AUDIT
	return __builtin_offsetof(struct task_struct, loginuid);
#else
	return -1;
#endif
}
