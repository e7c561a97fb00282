"""`llview kernel fetch|list`: obtain distribution kernels and show the profiles in the cache."""

import argparse

from llview.kernel import profile as kprofile


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("kernel", help="fetch and list kernel profiles")
    sub = parser.add_subparsers(dest="kernel_command", required=True, metavar="ACTION")

    fetch = sub.add_parser("fetch", help="download Debian's current kernel with apt into a profile")
    fetch.add_argument("--name", help="extra name for the profile (default: its release)")
    fetch.add_argument("--package", default=kprofile.DEFAULT_META_PACKAGE,
                       help="meta-package naming the kernel (default: %(default)s)")
    fetch.add_argument("--no-default", action="store_true",
                       help="do not make this the default profile")
    fetch.set_defaults(func=_fetch)

    listing = sub.add_parser("list", help="list fetched kernel profiles")
    listing.set_defaults(func=_list)

    show = sub.add_parser("show", help="print the paths of a profile")
    show.add_argument("--kernel", metavar="SPEC",
                      help="profile name, release or directory (default: the default profile)")
    show.set_defaults(func=_show)


def _fetch(args: argparse.Namespace) -> int:
    profile = kprofile.fetch(name=args.name, meta_package=args.package,
                             make_default=not args.no_default)
    print(f"{profile.release} {profile.version} {profile.directory}")
    return 0


def _list(args: argparse.Namespace) -> int:
    default = kprofile.default_profile_name()
    profiles = kprofile.list_profiles()
    if not profiles:
        print("no kernel profiles; run `llview kernel fetch`")
        return 0
    for directory in profiles:
        p = kprofile.load_profile(str(directory))
        alias = f" -> {directory.resolve().name}" if directory.is_symlink() else ""
        mark = "*" if directory.name == default else " "
        print(f"{mark} {directory.name:24} {p.release:20} {p.version:14}{alias}")
    return 0


def _show(args: argparse.Namespace) -> int:
    p = kprofile.load_profile(args.kernel)
    for key in ("release", "version", "directory", "root", "vmlinuz", "config", "headers",
                "headers_common", "modules", "kernel_source"):
        print(f"{key:15} {getattr(p, key)}")
    return 0
