// SPDX-License-Identifier: GPL-2.0
/*
 * The shipped programs plus one the verifier must refuse, for the test that
 * a refusal reaches the user as one line naming the program and the reason.
 * handle_fork is replaced by a version that writes at an unchecked offset;
 * everything else (maps, settings, the other programs) is the real object.
 */
#define handle_fork handle_fork_shipped
#include "process.bpf.c"
#undef handle_fork

/* no BPF_PROG: it would name its helper after the original too */
SEC("tp_btf/sched_process_fork")
int handle_fork(unsigned long long *ctx)
{
	struct task_struct *child = (struct task_struct *)ctx[1];
	__u32 cpu = bpf_get_smp_processor_id();
	struct exec_event *e = bpf_map_lookup_elem(&exec_scratch, &cpu);
	__u64 off = bpf_get_prandom_u32();

	if (!e)
		return 0;
	bpf_probe_read_kernel_str(&e->data[off], TASK_COMM_LEN, &child->comm);
	return 0;
}
