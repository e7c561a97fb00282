"""Kernel profiles: a distribution kernel's vmlinuz, .config, headers and modules, fetched with apt.

A profile lives in cache_dir()/kernels/<release>/ with the packages extracted by `dpkg -x` under
root/ and a profile.json naming the parts (paths relative to the profile directory, so a cache
can be moved). cache_dir()/kernels/default is a symlink to the profile used when --kernel is absent.

The kernel's own library code that an IDS may call (llview.kernel_functions.KERNEL_LIBRARY_FILES)
comes from Debian's linux-source-X.Y package of the same version: only those files are taken
from its tarball, into root/usr/src/linux-source-X.Y/, and profile.json names the directory
("kernel_source"). `llview kernel fetch` adds them to a profile fetched before they were needed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from llview.paths import LlviewError, cache_dir

PROFILE_FILE = "profile.json"
DEFAULT_LINK = "default"
DEFAULT_META_PACKAGE = "linux-image-amd64"
# Release names as Debian spells them: 6.1.0-56-amd64, 6.1.0-56-cloud-amd64.
_RELEASE_RE = re.compile(r"^[0-9][A-Za-z0-9.+_-]*$")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$")
_PACKAGE_RE = re.compile(r"^[a-z0-9][a-z0-9+.-]+$")  # Debian policy 5.6.1


@dataclass
class Profile:
    """Where one kernel's parts are on disk. All paths are absolute."""

    release: str
    root: Path
    vmlinuz: Path
    config: Path
    headers: Path
    headers_common: Path
    modules: Path
    version: str = ""
    directory: Path | None = None
    kernel_source: Path | None = None  # holds lib/*.c of the kernel's source (KERNEL_LIBRARY_FILES)
    _config_cache: dict[str, str] | None = field(default=None, repr=False, compare=False)

    def config_values(self) -> dict[str, str]:
        """CONFIG_* symbols from the kernel's .config ('y', 'm', numbers, quoted strings kept)."""
        if self._config_cache is None:
            values: dict[str, str] = {}
            for line in self.config.read_text().splitlines():
                if line.startswith("CONFIG_") and "=" in line:
                    key, value = line.split("=", 1)
                    values[key] = value
            self._config_cache = values
        return self._config_cache

    def to_json(self) -> dict[str, str]:
        base = self.directory or self.root

        def rel(p: Path) -> str:
            return os.path.relpath(p, base)

        meta = {
            "release": self.release,
            "version": self.version,
            "root": rel(self.root),
            "vmlinuz": rel(self.vmlinuz),
            "config": rel(self.config),
            "headers": rel(self.headers),
            "headers_common": rel(self.headers_common),
            "modules": rel(self.modules),
        }
        if self.kernel_source is not None:
            meta["kernel_source"] = rel(self.kernel_source)
        return meta


def kernels_dir() -> Path:
    path = cache_dir() / "kernels"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _read_profile_json(directory: Path) -> Profile:
    meta_path = directory / PROFILE_FILE
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError) as e:
        raise LlviewError(f"cannot read kernel profile {meta_path}: {e}") from e
    try:
        paths = {
            key: (directory / meta[key]).resolve()
            for key in ("root", "vmlinuz", "config", "headers", "headers_common", "modules")
        }
        source = meta.get("kernel_source")  # absent in profiles fetched before it was needed
        profile = Profile(release=meta["release"], version=meta.get("version", ""),
                          directory=directory.resolve(),
                          kernel_source=(directory / source).resolve() if source else None,
                          **paths)
    except (KeyError, TypeError) as e:
        raise LlviewError(f"kernel profile {meta_path} lacks field {e}") from e
    _check_complete(profile, str(meta_path))
    return profile


def _check_complete(profile: Profile, origin: str) -> None:
    for key in ("vmlinuz", "config", "headers", "headers_common", "modules"):
        path: Path = getattr(profile, key)
        if not path.exists():
            raise LlviewError(f"kernel profile {origin}: {key} {path} does not exist; "
                              "run `llview kernel fetch` again")


def profile_from_root(root: Path, directory: Path | None = None, version: str = "") -> Profile:
    """Finds the parts in a `dpkg -x` style tree: boot/vmlinuz-R, boot/config-R,
    usr/src/linux-headers-R, usr/src/linux-headers-<R minus flavour>-common, lib/modules/R."""
    root = root.resolve()
    vmlinuzes = sorted((root / "boot").glob("vmlinuz-*"))
    if not vmlinuzes:
        raise LlviewError(f"{root} holds no boot/vmlinuz-*: not a kernel profile or extracted "
                          "kernel package tree")
    if len(vmlinuzes) > 1:
        names = ", ".join(p.name for p in vmlinuzes)
        raise LlviewError(f"{root} holds several kernels ({names}); point --kernel at one")
    release = vmlinuzes[0].name.removeprefix("vmlinuz-")
    headers = root / "usr/src" / f"linux-headers-{release}"
    commons = sorted(p for p in (root / "usr/src").glob("linux-headers-*-common") if p.is_dir())
    # Debian: linux-headers-6.1.0-56-amd64 depends on linux-headers-6.1.0-56-common.
    abi = release.rsplit("-", 1)[0]
    preferred = root / "usr/src" / f"linux-headers-{abi}-common"
    common = preferred if preferred.is_dir() else (commons[0] if len(commons) == 1 else preferred)
    modules = root / "lib/modules" / release
    if not modules.exists() and (root / "usr/lib/modules" / release).exists():
        modules = root / "usr/lib/modules" / release
    profile = Profile(release=release, root=root, vmlinuz=vmlinuzes[0],
                      config=root / "boot" / f"config-{release}", headers=headers,
                      headers_common=common, modules=modules, version=version,
                      directory=directory.resolve() if directory else None)
    _check_complete(profile, str(root))
    return profile


def load_profile(spec: str | os.PathLike[str] | None = None) -> Profile:
    """The profile named by --kernel: a profile name/release, a directory, or None (default)."""
    if spec is None or str(spec) == "":
        link = kernels_dir() / DEFAULT_LINK
        if not link.exists():
            raise LlviewError("no kernel profile fetched yet (no default); "
                              "run `llview kernel fetch`")
        return _read_profile_json(link)
    text = str(spec)
    as_path = Path(text).expanduser()
    looks_like_path = "/" in text or text.startswith(".")
    if looks_like_path or (as_path.is_dir() and not _NAME_RE.match(text)):
        if not as_path.is_dir():
            raise LlviewError(f"kernel directory {as_path} does not exist")
        if (as_path / PROFILE_FILE).is_file():
            return _read_profile_json(as_path)
        if (as_path / "root" / "boot").is_dir():
            return profile_from_root(as_path / "root", directory=as_path)
        return profile_from_root(as_path)
    if not _NAME_RE.match(text):
        raise LlviewError(f"bad kernel profile name {text!r}")
    directory = kernels_dir() / text
    if not (directory / PROFILE_FILE).is_file():
        known = ", ".join(p.name for p in list_profiles()) or "none"
        raise LlviewError(f"no kernel profile {text!r} (known: {known}); "
                          "run `llview kernel fetch`")
    return _read_profile_json(directory)


def list_profiles() -> list[Path]:
    """Profile directories (and name links) in the cache, default link excluded."""
    return sorted(p for p in kernels_dir().iterdir()
                  if p.name != DEFAULT_LINK and (p / PROFILE_FILE).is_file())


def default_profile_name() -> str | None:
    link = kernels_dir() / DEFAULT_LINK
    return os.readlink(link) if link.is_symlink() else None


# ---- fetching with apt -----------------------------------------------------------------------


def _run(cmd: list[str], cwd: Path | None = None) -> str:
    try:
        done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
    except FileNotFoundError as e:
        raise LlviewError(f"`{cmd[0]}` is not installed (needed to fetch kernels)") from e
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise LlviewError(f"`{' '.join(cmd)}` failed: {' | '.join(detail)}")
    return done.stdout


def _depends(package: str) -> list[str]:
    out = _run(["apt-cache", "depends", "--no-recommends", "--no-suggests", package])
    return [line.split(":", 1)[1].strip().strip("<>")
            for line in out.splitlines() if line.strip().startswith("Depends:")]


def _candidate_version(package: str) -> str:
    out = _run(["apt-cache", "policy", package])
    match = re.search(r"^\s*Candidate:\s*(\S+)", out, re.M)
    if not match or match.group(1) == "(none)":
        raise LlviewError(f"apt has no installable version of {package}")
    return match.group(1)


def resolve_release(meta_package: str = DEFAULT_META_PACKAGE) -> tuple[str, str]:
    """(release, package version) of the kernel the meta-package currently points at."""
    try:
        depends = _depends(meta_package)
    except LlviewError:
        depends = []
    if not depends:
        print(f"llview: apt knows no {meta_package}; running apt-get update", file=sys.stderr)
        _run(["apt-get", "update", "-qq"])
        try:
            depends = _depends(meta_package)
        except LlviewError as e:
            raise LlviewError(f"apt has no package {meta_package} even after apt-get update"
                              ) from e
    images = [d for d in depends if d.startswith("linux-image-")]
    if not images:
        raise LlviewError(f"{meta_package} depends on no linux-image-* package")
    release = images[0].removeprefix("linux-image-")
    if not _RELEASE_RE.match(release):
        raise LlviewError(f"unexpected kernel package name {images[0]!r}")
    return release, _candidate_version(images[0])


def fetch(name: str | None = None, meta_package: str = DEFAULT_META_PACKAGE,
          make_default: bool = True, quiet: bool = False) -> Profile:
    """Downloads and extracts the current kernel into a profile (skips work already done)."""

    def say(msg: str) -> None:
        if not quiet:
            print(f"llview: {msg}", file=sys.stderr, flush=True)

    if not _PACKAGE_RE.match(meta_package):
        raise LlviewError(f"bad package name {meta_package!r}")
    if name is not None and (not _NAME_RE.match(name) or name == DEFAULT_LINK):
        raise LlviewError(f"bad profile name {name!r}: use letters, digits, '.', '_', '+', '-'")
    say(f"asking apt for the current {meta_package}")
    release, version = resolve_release(meta_package)
    base = kernels_dir()
    directory = base / release
    if (directory / PROFILE_FILE).is_file():
        profile = _read_profile_json(directory)
        say(f"kernel {release} ({profile.version}) already fetched in {directory}")
        if not has_kernel_library(profile):
            profile = _add_kernel_library(profile, directory, say)
    else:
        profile = _download_and_extract(release, version, directory, say)
    if name and name != release:
        _point_link(base / name, release)
        say(f"profile name {name} -> {release}")
    if make_default:
        _point_link(base / DEFAULT_LINK, release)
    return profile


def _point_link(link: Path, target: str) -> None:
    if link.exists() and not link.is_symlink():
        raise LlviewError(f"{link} exists and is not a profile link; remove it first")
    tmp = link.with_name(f".{link.name}.tmp{os.getpid()}")
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(target)
    tmp.replace(link)


def _download_and_extract(release: str, version: str, directory: Path, say) -> Profile:
    headers_pkg = f"linux-headers-{release}"
    commons = [d for d in _depends(headers_pkg) if d.startswith("linux-headers-")
               and d.endswith("-common")]
    if not commons:
        raise LlviewError(f"{headers_pkg} depends on no linux-headers-*-common package")
    # linux-kbuild-* holds scripts/ that the headers' symlinks point into (needed for Kbuild).
    kbuild = [d for d in _depends(headers_pkg) if d.startswith("linux-kbuild-")]
    packages = [f"linux-image-{release}", headers_pkg, commons[0], *kbuild[:1]]
    work = Path(tempfile.mkdtemp(prefix=f".fetch-{release}-", dir=directory.parent))
    try:
        # apt-get download drops privileges to _apt: give it a directory it can write.
        os.chmod(work, 0o755)
        debs = work / "debs"
        debs.mkdir()
        os.chmod(debs, 0o777)
        say(f"downloading {', '.join(packages)} ({version}); this takes a while")
        _run(["apt-get", "download", "-q", *packages], cwd=debs)
        root = work / "root"
        root.mkdir()
        for deb in sorted(debs.glob("*.deb")):
            say(f"extracting {deb.name}")
            _run(["dpkg", "-x", str(deb), str(root)])
        shutil.rmtree(debs)
        _fix_header_links(root)
        profile = profile_from_root(root, directory=work, version=version)
        profile.kernel_source = _fetch_kernel_library(release, version, root, work, say)
        (work / PROFILE_FILE).write_text(json.dumps(profile.to_json(), indent=2) + "\n")
        os.chmod(work, 0o755)
        try:
            work.rename(directory)  # atomic: a half-done fetch never looks like a profile
        except OSError:
            if not (directory / PROFILE_FILE).is_file():
                raise
            shutil.rmtree(work, ignore_errors=True)  # a concurrent fetch finished first
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    say(f"kernel {release} ready in {directory}")
    return _read_profile_json(directory)


def _fix_header_links(root: Path) -> None:
    """lib/modules/R/{build,source} point at /usr/src/...; repoint them inside the tree."""
    for build in [*root.glob("lib/modules/*/build"), *root.glob("lib/modules/*/source")]:
        if build.is_symlink():
            target = os.readlink(build)
            if target.startswith("/"):
                inside = root / target.lstrip("/")
                build.unlink()
                build.symlink_to(os.path.relpath(inside, build.parent))


# ---- the kernel's library source -------------------------------------------------------------


def has_kernel_library(profile: Profile) -> bool:
    """Whether the profile holds every kernel library file llview compiles for an IDS."""
    from llview.kernel_functions import KERNEL_LIBRARY_FILES

    source = profile.kernel_source
    return source is not None and all((source / f).is_file() for f in KERNEL_LIBRARY_FILES)


def kernel_source_package(release: str) -> str:
    """Debian's name for the kernel source package of a release: linux-source-6.1 for
    6.1.0-57-amd64 (built from the same source package as the image, at the same version)."""
    match = re.match(r"^([0-9]+\.[0-9]+)[.-]", release)
    if not match:
        raise LlviewError(f"cannot tell the kernel source package of release {release!r}")
    return f"linux-source-{match.group(1)}"


_QUOTED_INCLUDE = re.compile(r'^\s*#\s*include\s*"([^"]+)"', re.M)


def _fetch_kernel_library(release: str, version: str, root: Path, work: Path, say) -> Path:
    """Downloads linux-source-X.Y at `version` into `work` and extracts only the kernel library
    files (and the private headers they include) to root/usr/src/linux-source-X.Y/."""
    from llview.kernel_functions import KERNEL_LIBRARY_FILES

    package = kernel_source_package(release)
    debs = work / "source-deb"
    debs.mkdir()
    os.chmod(debs, 0o777)  # apt-get download runs as _apt
    try:
        say(f"downloading {package} ({version}) for the kernel's library code")
        try:
            _run(["apt-get", "download", "-q", f"{package}={version}"], cwd=debs)
        except LlviewError as e:
            raise LlviewError(f"cannot download {package} {version}, the kernel source of "
                              f"{release} ({e}); the kernel's library functions need it") from None
        [deb] = debs.glob("*.deb")
        unpacked = debs / "unpacked"
        _run(["dpkg-deb", "-x", str(deb), str(unpacked)])
        deb.unlink()
        tarballs = sorted((unpacked / "usr/src").glob("linux-source-*.tar.*"))
        if len(tarballs) != 1:
            raise LlviewError(f"{package} holds no single usr/src/linux-source-*.tar.* "
                              f"({len(tarballs)} found)")
        top = tarballs[0].name.split(".tar.")[0]  # the tarball's top directory
        destination = root / "usr/src"
        destination.mkdir(parents=True, exist_ok=True)
        wanted = list(KERNEL_LIBRARY_FILES)
        say(f"extracting {', '.join(wanted)} from {tarballs[0].name}")
        while wanted:
            _run(["tar", "-xf", str(tarballs[0]), "-C", str(destination),
                  *(f"{top}/{name}" for name in wanted)])
            # Private headers next to the sources ("radix-tree.h"): one more pass for those.
            wanted = sorted({str(Path(name).parent / header)
                             for name in wanted
                             for header in _QUOTED_INCLUDE.findall(
                                 (destination / top / name).read_text(errors="replace"))
                             if not (destination / top / Path(name).parent / header).exists()})
    finally:
        shutil.rmtree(debs, ignore_errors=True)
    return destination / top


def _add_kernel_library(profile: Profile, directory: Path, say) -> Profile:
    """Adds the kernel library source to a profile fetched without it, then rewrites
    profile.json (atomically: a concurrent reader sees the old or the new one)."""
    if not profile.version:
        raise LlviewError(f"kernel profile {directory} records no package version; fetch it "
                          "again (remove the directory first) to add the kernel library source")
    work = Path(tempfile.mkdtemp(prefix=".source-", dir=directory))
    try:
        os.chmod(work, 0o755)
        profile.kernel_source = _fetch_kernel_library(profile.release, profile.version,
                                                      profile.root, work, say)
        tmp = work / PROFILE_FILE
        tmp.write_text(json.dumps(profile.to_json(), indent=2) + "\n")
        tmp.replace(directory / PROFILE_FILE)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    say(f"kernel library source added to {directory}")
    return _read_profile_json(directory)
