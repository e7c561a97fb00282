#!/bin/busybox sh
# llview guest init (PID 1 of the monitored guest's initramfs).
# Mounts proc/sys/dev, starts the known daemons listed in /etc/llview/daemons, fills the guest up
# to llview.tasks=N tasks (kernel threads included) with idle `sleep` processes, reports readiness
# on the console, then serves `llview vm exec` on /dev/ttyS1 (protocol: exec_server.awk).

/bin/busybox mkdir -p /proc /sys /dev /tmp /run /sbin /usr/bin /usr/sbin
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sysfs /sys
/bin/busybox mount -t devtmpfs devtmpfs /dev
/bin/busybox --install -s
export PATH=/bin:/sbin:/usr/bin:/usr/sbin HOME=/root
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /run
hostname llview-guest

tasks=$(sed -n 's/.*llview\.tasks=\([0-9][0-9]*\).*/\1/p' /proc/cmdline)
[ -n "$tasks" ] || tasks=250

# The known daemons: scripts whose file names become their comm values.
while read -r daemon; do
    if [ -x "/bin/$daemon" ]; then
        "/bin/$daemon" </dev/null >/dev/null 2>&1 &
    fi
done < /etc/llview/daemons

# Idle fillers, so the task list is about as long as a small server's.
count=$(ls -d /proc/[0-9]* | wc -l)
while [ "$count" -lt "$tasks" ]; do
    sleep 100000000 </dev/null >/dev/null 2>&1 &
    count=$((count + 1))
done
sleep 1
count=$(ls -d /proc/[0-9]* | wc -l)
la57=$(grep -c -w la57 /proc/cpuinfo)

serve_exec() {
    stty raw -echo
    echo "LLVIEW-GUEST-READY tasks=$count la57=$la57" > /dev/console
    awk -f /etc/llview/exec-server.awk
}

# PID 1 must never exit: restart the exec server if it ever returns.
while :; do
    serve_exec < /dev/ttyS1 > /dev/ttyS1 2>/dev/null
    sleep 1
done
