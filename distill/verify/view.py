"""What a sandbox shows: the interpreter, its standard library and the shared libraries it loads,
read-only, and nothing else of the host.

`view(python)` asks the interpreter itself (once per process): its `sys.path` under `-I -S`, its
site-packages folders (masked with an empty tmpfs wherever a bound folder holds one), and the shared
libraries mapped once every extension module of its lib-dynload is imported. Each path is bound at its
real location; the symlinks met on the way to it (/lib64 -> usr/lib64, the loader's own link) are made
again inside, and the folders leading to it are created 0755 (bubblewrap would copy the host's mode,
and /root is 0700).
"""

from __future__ import annotations

import functools
import json
import os
import struct
import subprocess
from dataclasses import dataclass

_PROBE = r"""
import importlib, json, os, site, sys
for folder in [p for p in sys.path if os.path.isdir(p) and p.endswith("lib-dynload")]:
    for name in sorted(os.listdir(folder)):
        if name.endswith(".so"):
            try:
                importlib.import_module(name.split(".")[0])
            except BaseException:
                pass
libs = set()
with open("/proc/self/maps") as handle:
    for line in handle:
        parts = line.split(None, 5)
        if len(parts) == 6 and parts[5].startswith("/"):
            libs.add(parts[5].rstrip("\n"))
print(json.dumps({"path": sys.path, "site": site.getsitepackages(), "libs": sorted(libs)}))
"""


@dataclass(frozen=True)
class View:
    """The bubblewrap arguments that show a sandbox the interpreter, its stdlib and its libraries, read-only."""

    python: str
    binds: tuple[str, ...]
    symlinks: tuple[tuple[str, str], ...]
    masks: tuple[str, ...]

    def args(self) -> list[str]:
        """bwrap options: the folders leading to the binds (0755: bubblewrap would copy the host's modes,
        and /root is 0700), the binds, the links leading to them, then the site-packages masks."""
        out: list[str] = []
        parents = {os.path.dirname(path) for path in self.binds} | {os.path.dirname(link) for link, _ in self.symlinks}
        ancestors: set[str] = set()
        for parent in parents:
            while parent not in ("/", "") and not _inside(parent, list(self.binds)):
                ancestors.add(parent)
                parent = os.path.dirname(parent)
        for path in sorted(ancestors, key=lambda p: (p.count("/"), p)):
            out += ["--perms", "0755", "--dir", path]
        for path in self.binds:
            out += ["--ro-bind", path, path]
        for link, target in self.symlinks:
            out += ["--symlink", target, link]
        for path in self.masks:
            out += ["--tmpfs", path]
        return out


def elf_interpreter(path: str) -> str | None:
    """The dynamic loader an ELF executable names (PT_INTERP), or None for a static one.

    >>> elf_interpreter(__file__) is None
    True
    """
    with open(path, "rb") as handle:
        head = handle.read(64)
        if head[:4] != b"\x7fELF" or head[4] != 2:  # 64-bit only (what bubblewrap runs on)
            return None
        endian = "<" if head[5] == 1 else ">"
        phoff, = struct.unpack_from(endian + "Q", head, 32)
        phentsize, phnum = struct.unpack_from(endian + "HH", head, 54)
        for i in range(phnum):
            handle.seek(phoff + i * phentsize)
            kind, _, offset, _, _, size = struct.unpack(endian + "IIQQQQ", handle.read(40))
            if kind == 3:  # PT_INTERP
                handle.seek(offset)
                return handle.read(size).rstrip(b"\0").decode()
    return None


def _resolve(path: str, links: dict[str, str], hops: int = 0) -> str:
    """The real path of `path`, recording every symlink met on the way (`link -> target`)."""
    parts = [p for p in os.path.normpath(path).split("/") if p]
    current = "/"
    for i, part in enumerate(parts):
        step = os.path.join(current, part)
        if os.path.islink(step) and hops < 40:
            target = os.readlink(step)
            links[step] = target
            rest = os.path.join(os.path.dirname(step) if not os.path.isabs(target) else "/", target, *parts[i + 1:])
            return _resolve(os.path.normpath(rest), links, hops + 1)
        current = step
    return current


def _inside(path: str, folders: list[str]) -> bool:
    return any(path == f or path.startswith(f.rstrip("/") + "/") for f in folders)


@functools.lru_cache(maxsize=4)
def view(python: str) -> View:
    """What a sandbox running `python` must see, found by asking that interpreter (once per process)."""
    probe = subprocess.run([python, "-I", "-S", "-c", _PROBE], capture_output=True, text=True, timeout=120,
                           stdin=subprocess.DEVNULL, env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"})
    if probe.returncode != 0:
        raise RuntimeError(f"cannot inspect the interpreter {python}: {probe.stderr.strip()[-300:]}")
    found = json.loads(probe.stdout)
    links: dict[str, str] = {}
    wanted = [_resolve(python, links)]
    loader = elf_interpreter(os.path.realpath(python))
    if loader:
        wanted.append(_resolve(loader, links))
    folders = {os.path.dirname(_resolve(lib, links)) for lib in found["libs"]}
    folders |= {_resolve(p, links) for p in found["path"] if os.path.isdir(p)}
    if os.path.exists("/etc/ld.so.cache"):
        wanted.append(_resolve("/etc/ld.so.cache", links))
    binds: list[str] = []
    for path in sorted(folders, key=lambda p: (p.count("/"), p)):
        if not _inside(path, binds):
            binds.append(path)
    binds += [p for p in wanted if not _inside(p, binds)]
    sites = {_resolve(p, {}) for p in found["site"] if os.path.isdir(p)}
    for folder in binds:  # a site-packages (or Debian's dist-packages) inside a bound stdlib folder
        if os.path.isdir(folder):
            sites |= {os.path.join(folder, n) for n in ("site-packages", "dist-packages")
                      if os.path.isdir(os.path.join(folder, n))}
    masks = sorted(p for p in sites if _inside(p, binds))
    symlinks = tuple(sorted((link, target) for link, target in links.items() if not _inside(link, binds)))
    return View(python, tuple(binds), symlinks, tuple(masks))
