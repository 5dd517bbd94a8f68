#!/bin/sh
# /init of a kernel-matrix guest (the whole root is the initramfs): mount what the
# collector reads, run the checks with the serial console as output, power off.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /tmp
mount -t cgroup2 cgroup2 /sys/fs/cgroup 2>/dev/null
mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null   # sched/preempt, for the log
exec </dev/console >/dev/console 2>&1
echo "KCHECK boot uptime=$(cut -d' ' -f1 /proc/uptime)s"
/opt/collector/bin/python /opt/kcheck/guest_checks.py --collector /opt/collector/bin/collector --work /tmp/kcheck
echo "KCHECK exit $? uptime=$(cut -d' ' -f1 /proc/uptime)s"
echo o > /proc/sysrq-trigger   # power off (qemu runs with -no-reboot)
sleep 30
