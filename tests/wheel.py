"""Build distill as a wheel and install it into a fresh virtual environment, for tests that run it from an
empty directory, the way a user who ran `pip install distill` would.

The wheel is built from a clean copy of the sources (so no stale `build/` folder can slip files in) and
installed with `--no-deps`; the fresh environment finds the third-party dependencies through a `.pth` line
naming this environment's site-packages. A path named in a `.pth` line is not itself a site directory, so
the editable install of the checkout (a `.pth` hook there) is not loaded: `import distill` finds the wheel.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without PYTHONPATH, which would put a checkout ahead of the wheel."""
    return {**{k: v for k, v in os.environ.items() if k != "PYTHONPATH"}, **extra}


def build_wheel(work: Path) -> Path:
    """A wheel of the checkout, built in `work` from a copy of the package and its metadata."""
    source = work / "source"
    shutil.copytree(REPO / "distill", source / "distill", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, source / name)
    dist = work / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(dist),
                    str(source)], check=True, capture_output=True, timeout=300)
    (wheel,) = dist.glob("distill-*.whl")
    return wheel


def install(work: Path) -> Path:
    """A fresh virtual environment with the wheel installed; returns its `bin/` folder."""
    wheel = build_wheel(work)
    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True, timeout=300)
    python = venv / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    Path(site, "distill-test-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n", encoding="utf-8")
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)], check=True,
                   capture_output=True, timeout=300)
    where = subprocess.run([str(python), "-c", "import distill; print(distill.__file__)"], check=True,
                           capture_output=True, text=True, cwd=work, env=clean_env()).stdout.strip()
    assert where.startswith(str(venv)), f"distill was imported from {where}, not from the installed wheel"
    return venv / "bin"


def distill(bin_dir: Path, cwd: Path, *args: str, timeout: int = 300) -> str:
    """Run the installed `distill` in `cwd`; a non-zero exit fails with the end of its output."""
    env = clean_env(OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    result = subprocess.run([str(bin_dir / "distill"), *args], cwd=cwd, capture_output=True, text=True,
                            timeout=timeout, env=env)
    assert result.returncode == 0, f"distill {' '.join(args)}:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    return result.stdout
