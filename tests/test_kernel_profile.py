"""Kernel profiles: finding the parts in an extracted tree, loading by name/dir/default, errors."""

import json
import os
import subprocess
import sys

import pytest

from llview.kernel import profile as kprofile
from llview.paths import LlviewError

RELEASE = "9.8.0-7-amd64"


def make_tree(root, release=RELEASE, config="CONFIG_X86_5LEVEL=y\nCONFIG_HZ=250\n"):
    """A `dpkg -x` style tree like Debian's image + headers packages leave."""
    (root / "boot").mkdir(parents=True)
    (root / "boot" / f"vmlinuz-{release}").write_bytes(b"MZ fake kernel")
    (root / "boot" / f"config-{release}").write_text(
        "# comment\n" + config + '# CONFIG_FOO is not set\nCONFIG_LOCALVERSION=""\n')
    abi = release.rsplit("-", 1)[0]
    (root / "usr/src" / f"linux-headers-{release}/include").mkdir(parents=True)
    (root / "usr/src" / f"linux-headers-{abi}-common/include").mkdir(parents=True)
    (root / "lib/modules" / release / "kernel").mkdir(parents=True)
    return root


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("LLVIEW_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def install_profile(home, release=RELEASE, default=True):
    """A profile as `llview kernel fetch` leaves it: root/ plus profile.json, default link."""
    directory = home / "kernels" / release
    make_tree(directory / "root", release)
    found = kprofile.profile_from_root(directory / "root", directory=directory, version="1.2-3")
    (directory / "profile.json").write_text(json.dumps(found.to_json()))
    if default:
        (home / "kernels" / "default").symlink_to(release)
    return directory


def test_parts_found_in_extracted_tree(tmp_path):
    root = make_tree(tmp_path / "root")
    p = kprofile.profile_from_root(root)
    assert p.release == RELEASE
    assert p.vmlinuz == root / "boot" / f"vmlinuz-{RELEASE}"
    assert p.config == root / "boot" / f"config-{RELEASE}"
    assert p.headers == root / "usr/src" / f"linux-headers-{RELEASE}"
    assert p.headers_common == root / "usr/src/linux-headers-9.8.0-7-common"
    assert p.modules == root / "lib/modules" / RELEASE


def test_config_values(tmp_path):
    p = kprofile.profile_from_root(make_tree(tmp_path / "root"))
    values = p.config_values()
    assert values["CONFIG_X86_5LEVEL"] == "y"
    assert values["CONFIG_HZ"] == "250"
    assert values["CONFIG_LOCALVERSION"] == '""'
    assert "CONFIG_FOO" not in values


def test_load_by_name_directory_and_default(home):
    directory = install_profile(home)
    by_default = kprofile.load_profile(None)
    by_name = kprofile.load_profile(RELEASE)
    by_dir = kprofile.load_profile(str(directory))
    by_root = kprofile.load_profile(str(directory / "root"))
    assert by_default.release == by_name.release == by_dir.release == by_root.release == RELEASE
    assert by_name.version == "1.2-3"
    assert by_name.headers == (directory / "root/usr/src" / f"linux-headers-{RELEASE}").resolve()
    assert by_name.directory == directory.resolve()


def test_profile_survives_moving_the_cache(home, tmp_path, monkeypatch):
    install_profile(home)
    moved = tmp_path / "moved"
    home.rename(moved)
    monkeypatch.setenv("LLVIEW_HOME", str(moved))
    assert kprofile.load_profile(None).vmlinuz.is_relative_to(moved)


def test_missing_default_says_to_fetch(home):
    with pytest.raises(LlviewError, match="llview kernel fetch"):
        kprofile.load_profile(None)


def test_unknown_name_lists_known(home):
    install_profile(home)
    with pytest.raises(LlviewError, match=rf"no kernel profile 'other'.*{RELEASE}"):
        kprofile.load_profile("other")


def test_missing_part_is_named(home):
    directory = install_profile(home)
    (directory / "root" / "boot" / f"config-{RELEASE}").unlink()
    with pytest.raises(LlviewError, match="config .* does not exist"):
        kprofile.load_profile(RELEASE)


def test_directory_that_is_no_kernel(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(LlviewError, match="no boot/vmlinuz"):
        kprofile.load_profile(str(tmp_path / "empty"))
    with pytest.raises(LlviewError, match="does not exist"):
        kprofile.load_profile(str(tmp_path / "absent"))


def test_two_kernels_in_one_tree_is_ambiguous(tmp_path):
    root = make_tree(tmp_path / "root")
    (root / "boot" / "vmlinuz-1.0.0-1-amd64").write_bytes(b"")
    with pytest.raises(LlviewError, match="several kernels"):
        kprofile.profile_from_root(root)


def test_corrupt_profile_json(home):
    directory = install_profile(home)
    (directory / "profile.json").write_text("{not json")
    with pytest.raises(LlviewError, match="cannot read kernel profile"):
        kprofile.load_profile(RELEASE)


def test_bad_fetch_arguments_rejected(home):
    with pytest.raises(LlviewError, match="bad profile name"):
        kprofile.fetch(name="../x", quiet=True)
    with pytest.raises(LlviewError, match="bad package name"):
        kprofile.fetch(meta_package="--option", quiet=True)


def test_cli_list_marks_default(home):
    install_profile(home)
    install_profile(home, release="9.9.0-1-amd64", default=False)
    out = subprocess.run([sys.executable, "-m", "llview.cli", "kernel", "list"],
                         capture_output=True, text=True, check=True,
                         env={**os.environ, "LLVIEW_HOME": str(home)}).stdout
    marked = [line.split()[1] for line in out.splitlines() if line.startswith("*")]
    unmarked = [line.split()[0] for line in out.splitlines() if line.startswith(" ")]
    assert marked == [RELEASE]
    assert unmarked == ["9.9.0-1-amd64"]


@pytest.mark.guest
def test_fetched_profile_is_apts_current_kernel(kernel_profile):
    release, version = kprofile.resolve_release()
    assert kernel_profile.release == release
    assert kernel_profile.version == version
    assert kernel_profile.vmlinuz.stat().st_size > 1 << 20
    assert kernel_profile.config_values()["CONFIG_X86_5LEVEL"] == "y"
    assert (kernel_profile.headers / "include/generated/autoconf.h").is_file()
    assert (kernel_profile.headers_common / "include/linux/sched.h").is_file()
    assert (kernel_profile.modules / "modules.order").is_file()
    # Kbuild's scripts/ resolve inside the profile (linux-kbuild is fetched too).
    assert (kernel_profile.headers / "scripts").resolve().is_dir()


@pytest.mark.guest  # slow: downloads the kernel packages again (~100 MB) into an empty cache
def test_fetch_into_empty_cache(home, kernel_profile):
    fetched = kprofile.fetch(name="mine", quiet=True)
    assert fetched.release == kernel_profile.release
    assert fetched.directory == (home / "kernels" / fetched.release).resolve()
    assert kprofile.load_profile(None) == kprofile.load_profile("mine") == fetched
    assert fetched.vmlinuz.read_bytes() == kernel_profile.vmlinuz.read_bytes()
    # The module tree's build link points at the headers inside this cache, not /usr/src.
    assert (fetched.modules / "build").resolve() == fetched.headers
    assert not list((home / "kernels").glob(".fetch-*"))  # no half-done work left behind
    stamp = (fetched.directory / "profile.json").stat().st_mtime_ns
    assert kprofile.fetch(quiet=True) == fetched
    assert (fetched.directory / "profile.json").stat().st_mtime_ns == stamp
