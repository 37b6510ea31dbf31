"""Throwaway git repositories for the pre-commit tests (the hook installed for real by ``try-repo``)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def has_git_checkout() -> bool:
    """Whether git is there and this is a git checkout of shapecalc (the hook tests need both)."""
    return shutil.which("git") is not None and (ROOT / ".git").exists()


def git(*args: str, cwd: Path) -> str:
    """Run git in ``cwd`` with a fixed identity and no user configuration; its stdout."""
    env = {
        "GIT_AUTHOR_NAME": "test",
        "GIT_AUTHOR_EMAIL": "test@example.com",
        "GIT_COMMITTER_NAME": "test",
        "GIT_COMMITTER_EMAIL": "test@example.com",
        "HOME": str(cwd),
        "PATH": os.environ.get("PATH", ""),
    }
    proc = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=True)
    return proc.stdout


def snapshot(root: Path, dest: Path) -> Path:
    """This checkout's working tree (tracked and untracked files, not ignored ones) as a one-commit repo.

    ``pre-commit try-repo`` on a dirty checkout commits only its tracked changes
    (``git add -u``): untracked new files would be missing. A snapshot tests
    exactly what is on disk.
    """
    listed = git("ls-files", "-z", "--cached", "--others", "--exclude-standard", cwd=root).split("\0")
    for name in filter(None, listed):
        src = root / name
        if src.is_file():  # a tracked file deleted in the working tree is listed too
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    git("init", "-q", cwd=dest)
    git("add", "-A", cwd=dest)
    git("commit", "-q", "-m", "snapshot", cwd=dest)
    return dest
