"""The monitored guest: QEMU with a busybox initramfs, guest RAM in a file, `vm exec`."""

from llview.vm.qemu import VM

__all__ = ["VM"]
