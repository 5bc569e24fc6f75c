"""Process facts read from /proc, for tests that kill a run and check what outlived it."""

from __future__ import annotations

from pathlib import Path


def child_pids(pid: int) -> list[int]:
    """The direct children of ``pid`` (empty without procfs)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[-1].split()  # the command name may hold spaces
        if int(fields[1]) == pid:
            found.append(int(entry.name))
    return found


def is_alive(pid: int) -> bool:
    """``pid`` runs (a zombie or a reaped process does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")
