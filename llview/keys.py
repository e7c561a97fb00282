"""Pre-shared AES-256 keys: generated into a 0600 file, never on a command line."""

import argparse
import os
import stat
from pathlib import Path

from llview.paths import LlviewError

KEY_LEN = 32


def generate_key_file(path: Path, force: bool = False) -> None:
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if force else os.O_EXCL)
    try:
        fd = os.open(path, flags, 0o600)
    except FileExistsError:
        raise LlviewError(f"{path}: already exists (use --force to replace it)") from None
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, os.urandom(KEY_LEN))
    finally:
        os.close(fd)


def read_key_file(path: Path) -> bytes:
    """Reads a key file, refusing one that others can read or of the wrong size."""
    try:
        st = path.stat()
    except FileNotFoundError:
        raise LlviewError(f"{path}: key file not found") from None
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise LlviewError(f"{path}: key file is readable by others (chmod 600 it)")
    data = path.read_bytes()
    if len(data) != KEY_LEN:
        raise LlviewError(f"{path}: key file must hold {KEY_LEN} bytes, found {len(data)}")
    return data


def _keygen(args: argparse.Namespace) -> int:
    generate_key_file(Path(args.path), force=args.force)
    print(f"wrote a 256-bit key to {args.path} (mode 0600)")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("keygen", help="write a new 256-bit key to a file (mode 0600)")
    p.add_argument("path")
    p.add_argument("--force", action="store_true", help="replace an existing file")
    p.set_defaults(func=_keygen)
