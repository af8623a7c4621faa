"""Start a student's kernel with resource limits, and where the platform allows, in a sandbox.

Run by the grader as a script (``python -I -S _sandbox.py SPEC.json``), never imported by a
kernel: it uses the standard library only, reads its settings from SPEC (a JSON file the grader
wrote outside the student's folder), and ends by ``exec``-ing the kernel command.

``"mode": "none"``: set the resource limits (``RLIMIT_AS`` memory, ``RLIMIT_CPU`` seconds,
``RLIMIT_FSIZE`` file size, no core dumps), change to the student's folder, exec the kernel.

``"mode": "namespaces"`` (Linux; the grader starts this script under ``unshare --user
--map-root-user --mount --pid --net --ipc --fork --kill-child``, so it is process 1 of fresh user,
mount, PID, network and IPC namespaces). Before the kernel starts, this script builds a new root
file system on an empty tmpfs and pivots into it:

* read-only bind mounts of the system and Python directories the kernel needs (``readonly``) and
  of the few device nodes programs expect (``/dev/null``, ``/dev/urandom``, ...);
* the student's folder (``writable``) at its own path, read-write: the only folder of the grader's
  disk the kernel can see or change;
* a small private ``/tmp`` and ``/dev/shm`` (tmpfs), a ``/proc`` of the new PID namespace (the
  grader's processes and their command lines are not in it);
* the grader's folders (``hide``), should one of them lie inside a read-only path, covered by an
  empty read-only tmpfs;
* the old root is unmounted, the capability bounding set emptied and ``no_new_privs`` set, so the
  kernel holds no privilege, not even inside its namespaces; with a network namespace of its own
  (only a loopback interface, which is down) it reaches no network, and it talks to the grader
  through Unix sockets in its folder.

This process stays as the namespace's init: it starts the kernel as its child, reaps orphans, and
exits with the kernel's status. When it exits, the kernel and everything it started die with it.
"""

from __future__ import annotations

import ctypes
import json
import os
import platform
import resource
import sys

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_NOATIME, MS_NODIRATIME, MS_BIND, MS_REC = 32, 1024, 2048, 4096, 16384
MS_PRIVATE, MS_RELATIME = 1 << 18, 1 << 21
MNT_DETACH = 2
PR_CAPBSET_DROP, PR_SET_NO_NEW_PRIVS = 24, 38
# statvfs flags (ST_*) that a read-only remount must keep: they are locked on mounts made outside
# the user namespace, and clearing one fails with EPERM.
_LOCKED = ((2, MS_NOSUID), (4, MS_NODEV), (8, MS_NOEXEC), (1024, MS_NOATIME), (2048, MS_NODIRATIME),
           (4096, MS_RELATIME))
SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41, "arm64": 41, "riscv64": 41, "ppc64le": 203, "s390x": 217}
DEVICES = ("null", "zero", "full", "random", "urandom")

_libc = ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    enc = lambda s: None if s is None else s.encode()  # noqa: E731
    _check(_libc.mount(enc(source), enc(target), enc(fstype), ctypes.c_ulong(flags), enc(data)),
           f"mount {source} on {target}")


def _bind(source: str, target: str, *, readonly: bool) -> None:
    _mount(source, target, None, MS_BIND | MS_REC)
    if readonly:
        flags = os.statvfs(target).f_flag
        keep = 0
        for st, ms in _LOCKED:
            if flags & st:
                keep |= ms
        _mount(None, target, None, MS_REMOUNT | MS_BIND | MS_RDONLY | keep)


def _make_point(path: str, like: str) -> None:
    """An empty directory or file at ``path`` to mount ``like`` on."""
    if os.path.isdir(like):
        os.makedirs(path, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "a"):
            pass


def _inside(path: str, parent: str) -> bool:
    return path == parent or path.startswith(parent.rstrip("/") + "/")


def build_root(spec: dict) -> None:
    """Mount the new root file system described by ``spec`` and pivot into it."""
    root = spec["root"]
    _mount(None, "/", None, MS_REC | MS_PRIVATE)  # nothing we mount leaks back to the grader
    _mount("tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=8m")
    # The private /tmp first: a read-only path below /tmp (a virtual environment in a checkout under
    # /tmp, say) is then bound inside it and stays visible, instead of being covered by it.
    for name in ("tmp", "dev/shm"):
        os.makedirs(f"{root}/{name}", exist_ok=True)
        _mount("tmpfs", f"{root}/{name}", "tmpfs", MS_NOSUID | MS_NODEV, f"mode=1777,size={spec['tmp_mb']}m")
    done: list[str] = []
    for path in sorted(spec["readonly"], key=lambda p: (p.count("/"), p)):
        if not os.path.lexists(path) or any(_inside(path, d) for d in done):
            continue
        target = root + path
        if os.path.islink(path) and os.path.dirname(path) == "/":  # /bin -> usr/bin on merged-/usr systems
            os.symlink(os.readlink(path), target)
        else:
            _make_point(target, path)
            _bind(path, target, readonly=True)
        done.append(path)
    for name in DEVICES:
        if os.path.exists(f"/dev/{name}"):
            _make_point(f"{root}/dev/{name}", f"/dev/{name}")
            _mount(f"/dev/{name}", f"{root}/dev/{name}", None, MS_BIND)
    os.makedirs(f"{root}/proc", exist_ok=True)
    _mount("proc", f"{root}/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    for path in spec["writable"]:
        _make_point(root + path, path)
        _bind(path, root + path, readonly=False)
    for path in spec["hide"]:
        if any(_inside(path, d) for d in done) and os.path.isdir(root + path):
            _mount("tmpfs", root + path, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV, "size=4k")
    os.makedirs(f"{root}/.old-root", exist_ok=True)
    number = SYS_PIVOT_ROOT.get(platform.machine())
    if number is None:
        raise OSError(f"pivot_root: unknown system call number on {platform.machine()}")
    _check(_libc.syscall(ctypes.c_long(number), root.encode(), f"{root}/.old-root".encode()), "pivot_root")
    os.chdir("/")
    _check(_libc.umount2(b"/.old-root", MNT_DETACH), "umount the old root")
    os.rmdir("/.old-root")
    _mount(None, "/", None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)


def drop_privileges() -> None:
    """Empty the capability bounding set and forbid gaining privileges: the kernel has none after exec."""
    for cap in range(64):
        if _libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            break  # past the last capability this kernel knows
    _check(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(PR_SET_NO_NEW_PRIVS)")


def set_limits(limits: dict) -> None:
    """Set each resource limit (0: unlimited); one the platform refuses is reported in the kernel's log."""
    for name, value in [*limits.items(), ("core", 0)]:
        if value or name == "core":
            which = getattr(resource, f"RLIMIT_{name.upper()}", None)
            try:
                resource.setrlimit(which, (value, value))
            except (TypeError, ValueError, OSError) as exc:
                print(f"[grader] the limit RLIMIT_{name.upper()} = {value} could not be set: {exc}", file=sys.stderr)


def start_kernel(spec: dict) -> None:
    set_limits(spec["limits"])
    os.chdir(spec["cwd"])
    os.execve(spec["argv"][0], spec["argv"], spec["env"])


def main(path: str) -> int:
    with open(path) as f:
        spec = json.load(f)
    if spec["mode"] == "none":
        start_kernel(spec)  # does not return
    build_root(spec)
    drop_privileges()
    child = os.fork()
    if child == 0:
        try:
            start_kernel(spec)
        finally:
            os._exit(127)
    while True:  # the namespace's init: reap every orphan, leave with the kernel's status
        try:
            pid, status = os.wait()
        except ChildProcessError:
            return 1
        if pid == child:
            return os.waitstatus_to_exitcode(status) % 256


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -I -S _sandbox.py SPEC.json")
    sys.exit(main(sys.argv[1]))
