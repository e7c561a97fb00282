"""`llview vm start|exec|stop|list|info`: the monitored QEMU guest from the command line.

`llview vm start --name t1 --agent kernel --key key.bin` boots a guest whose kernel runs the
llview agent module, with an ivshmem region (--shm, on by default with the kernel agent) and the
workload confined in its own namespaces (--confine, on by default); it prints the --agent URLs
an IDS uses to reach the in-kernel agent (tcp://127.0.0.1:PORT and shm:/dev/shm/...).

`llview vm insmod t1 FILE.ko [PARAM=VALUE ...]` copies a module into the running guest and loads
it; `llview vm rmmod t1 MODULE` unloads it; `llview vm push t1 HOST GUEST` copies any file.
`llview vm dump t1 t1.elf` writes the guest's memory to an ELF core (QMP dump-guest-memory) that
`llview agent serve --image t1.elf` serves as it serves the live guest.
"""

import argparse
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

from llview.keys import read_key_file
from llview.paths import LlviewError
from llview.vm.qemu import AGENTS, DEFAULT_MEMORY, DEFAULT_TASKS, VM


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("vm", help="start, use and stop the monitored guest")
    sub = parser.add_subparsers(dest="vm_command", required=True, metavar="ACTION")

    start = sub.add_parser("start", help="boot a guest (QEMU) with its RAM in a file")
    start.add_argument("--name", required=True, help="name of the guest, e.g. t1")
    start.add_argument("--kernel", metavar="SPEC",
                       help="kernel profile name, release or directory (default: the default)")
    start.add_argument("--memory", default=DEFAULT_MEMORY, help="guest RAM (default %(default)s)")
    start.add_argument("--tasks", type=int, default=DEFAULT_TASKS,
                       help="tasks in the guest, kernel threads included (default %(default)s)")
    start.add_argument("--accel", choices=("tcg", "kvm"), default="tcg",
                       help="tcg (default, reliable) or kvm (opt-in: nested KVM can hang)")
    start.add_argument("--timeout", type=float, default=180.0,
                       help="seconds to wait for the boot (default %(default)s)")
    start.add_argument("--file", action="append", default=[], metavar="HOST:GUEST",
                       help="copy a host file into the guest's initramfs (repeatable)")
    start.add_argument("--agent", choices=AGENTS, default="none",
                       help="kernel: load the in-kernel agent (llview_agent.ko) at boot")
    start.add_argument("--key", metavar="FILE",
                       help="the agent's 32-byte key file (mode 0600), for --agent kernel")
    start.add_argument("--agent-port", type=int, metavar="PORT",
                       help="127.0.0.1 port forwarded to the guest agent (default: a free one)")
    start.add_argument("--shm", action=argparse.BooleanOptionalAction, default=None,
                       help="add an ivshmem device backed by a /dev/shm file, for the "
                            "shared-memory transport (default: on with --agent kernel)")
    start.add_argument("--confine", action=argparse.BooleanOptionalAction, default=True,
                       help="run the known daemons in their own pid/mount/net/uts namespaces "
                            "(default: on)")
    start.add_argument("--vmcoreinfo", action="store_true",
                       help="add QEMU's vmcoreinfo device and load the guest's qemu_fw_cfg "
                            "module, so `vm dump` files carry the kernel's VMCOREINFO note")
    start.set_defaults(func=_start)

    dump = sub.add_parser("dump", help="write the guest's memory to an ELF core file (QMP "
                                       "dump-guest-memory); the guest pauses meanwhile")
    dump.add_argument("name")
    dump.add_argument("file", help="the new dump file (not overwritten if it exists)")
    dump.add_argument("--timeout", type=float, default=300.0,
                      help="seconds to wait for QEMU to finish (default %(default)s)")
    dump.set_defaults(func=_dump)

    run = sub.add_parser("exec", help="run a shell command in the guest: vm exec t1 -- CMD...")
    run.add_argument("name")
    run.add_argument("--timeout", type=float, default=60.0,
                     help="seconds before the guest kills the command (default %(default)s)")
    run.add_argument("command", nargs=argparse.REMAINDER,
                     help="command; several words are joined with spaces, as ssh does")
    run.set_defaults(func=_exec)

    insmod = sub.add_parser("insmod", help="copy a kernel module into a running guest and load "
                                           "it: vm insmod t1 FILE.ko [PARAM=VALUE ...]")
    insmod.add_argument("name")
    insmod.add_argument("module", metavar="FILE.ko")
    insmod.add_argument("params", nargs="*", metavar="PARAM=VALUE")
    insmod.set_defaults(func=_insmod)

    rmmod = sub.add_parser("rmmod", help="unload a kernel module from a running guest")
    rmmod.add_argument("name")
    rmmod.add_argument("module", metavar="MODULE")
    rmmod.set_defaults(func=_rmmod)

    push = sub.add_parser("push", help="copy a host file into a running guest (checksummed)")
    push.add_argument("name")
    push.add_argument("host_path", metavar="HOST_FILE")
    push.add_argument("guest_path", metavar="GUEST_PATH")
    push.add_argument("--mode", default="644", help="octal file mode (default %(default)s)")
    push.set_defaults(func=_push)

    stop = sub.add_parser("stop", help="stop a guest and delete its RAM file")
    stop.add_argument("name")
    stop.set_defaults(func=_stop)

    listing = sub.add_parser("list", help="list guests")
    listing.set_defaults(func=_list)

    info = sub.add_parser("info", help="print a guest's state (RAM file, port, sockets) as JSON")
    info.add_argument("name")
    info.set_defaults(func=_info)


def _start(args: argparse.Namespace) -> int:
    files = {}
    for spec in args.file:
        host, sep, guest = spec.partition(":")
        if not sep or not host or not guest:
            print(f"llview: error: --file {spec!r}: use HOST_PATH:/GUEST/PATH", file=sys.stderr)
            return 2
        files[guest] = host
    if args.agent == "kernel" and not args.key:
        print("llview: error: --agent kernel needs --key FILE (make one with "
              "`llview keygen FILE`)", file=sys.stderr)
        return 2
    if args.key and args.agent != "kernel":
        print("llview: error: --key is only used with --agent kernel", file=sys.stderr)
        return 2
    key = read_key_file(Path(args.key)) if args.key else None
    vm = VM.start(args.name, kernel=args.kernel, memory=args.memory, tasks=args.tasks,
                  accel=args.accel, timeout=args.timeout, files=files, agent=args.agent,
                  key=key, host_port=args.agent_port, shm=args.shm, confine=args.confine,
                  vmcoreinfo=args.vmcoreinfo)
    print(f"{vm.name} pid {vm.pid} ram {vm.ram_path} port {vm.host_port}")
    for url in vm.urls():
        print(f"agent: --agent {url}")
    if vm.shm_path and vm.agent != "kernel":
        print(f"shm region: {vm.shm_path} (no agent serves it in the guest)")
    return 0


def _exec(args: argparse.Namespace) -> int:
    words = list(args.command)
    # REMAINDER also swallows options given after NAME: take --timeout from before the "--".
    while words and words[0].startswith("--timeout"):
        option = words.pop(0)
        value = option.split("=", 1)[1] if "=" in option else (words.pop(0) if words else "")
        try:
            args.timeout = float(value)
        except ValueError:
            print(f"llview: error: bad --timeout {value!r}", file=sys.stderr)
            return 2
    if words[:1] == ["--"]:
        words = words[1:]
    if not words:
        print("llview: error: vm exec needs a command: llview vm exec NAME -- CMD...",
              file=sys.stderr)
        return 2
    began = time.monotonic()
    rc, output = VM.load(args.name).exec_raw(" ".join(words), timeout=args.timeout)
    sys.stdout.buffer.write(output)
    sys.stdout.flush()
    if rc == 143 and time.monotonic() - began >= args.timeout:
        print(f"llview: the command timed out after {args.timeout:g} s and was killed",
              file=sys.stderr)
    return rc


def _insmod(args: argparse.Namespace) -> int:
    params: dict[str, str | int] = {}
    for spec in args.params:
        key, sep, value = spec.partition("=")
        if not sep or not key:
            raise LlviewError(f"module parameter {spec!r}: use PARAM=VALUE")
        params[key] = value
    name = VM.load(args.name).insmod(args.module, params)
    print(f"{args.name}: loaded {name}")
    return 0


def _rmmod(args: argparse.Namespace) -> int:
    VM.load(args.name).rmmod(args.module)
    print(f"{args.name}: unloaded {args.module}")
    return 0


def _push(args: argparse.Namespace) -> int:
    try:
        mode = int(args.mode, 8)
    except ValueError:
        raise LlviewError(f"bad --mode {args.mode!r}: an octal mode such as 644") from None
    VM.load(args.name).push(args.host_path, args.guest_path, mode=mode)
    return 0


def _dump(args: argparse.Namespace) -> int:
    result = VM.load(args.name).dump(args.file, timeout=args.timeout)
    print(f"{result.path}: {result.size >> 20} MiB ELF core of {args.name} in "
          f"{result.seconds:.1f} s; serve it with `llview agent serve --image {result.path} "
          f"--key FILE`")
    return 0


def _stop(args: argparse.Namespace) -> int:
    VM.load(args.name).stop()
    return 0


def _list(args: argparse.Namespace) -> int:
    vms = VM.list()
    if not vms:
        print("no guests; start one with `llview vm start --name t1`")
        return 0
    print(f"{'NAME':12} {'STATE':8} {'PID':>8} {'PORT':>6} {'AGENT':11} {'KERNEL':20} RAM")
    for vm in vms:
        state = "running" if vm.alive() else "dead"
        agent = vm.agent + ("+shm" if vm.shm_path else "")
        print(f"{vm.name:12} {state:8} {vm.pid:>8} {vm.host_port:>6} {agent:11} "
              f"{vm.kernel_release:20} {vm.ram_path} ({vm.ram_size >> 20} MiB)")
    return 0


def _info(args: argparse.Namespace) -> int:
    vm = VM.load(args.name)
    print(json.dumps({**asdict(vm), "running": vm.alive(), "agent_urls": vm.urls()}, indent=2))
    return 0
