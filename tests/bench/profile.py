"""Sample a running service with py-spy during the benchmark, and summarize where it spends.

py-spy reads the process from outside (no code change, no restart); its collapsed stacks are
kept in artifacts/ (load them in speedscope.app for a flame graph) and summarized here as the
share of samples in which each package appears (inclusive) and is on top (self).
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

PY_SPY = Path(sys.executable).parent / "py-spy"
_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^:)]*)(?::\d+)?\)$")


def start(pid: int, seconds: float, output: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [str(PY_SPY), "record", "--pid", str(pid), "--duration", str(int(seconds)),
         "--rate", "200", "--format", "raw", "--nonblocking", "--gil", "--full-filenames",
         "--output", str(output)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def area(file: str) -> str:
    """The package a frame belongs to: ours by service, a library by its top-level name."""
    parts = Path(file).parts
    if "site-packages" in parts:
        rest = parts[parts.index("site-packages") + 1 :]
        return rest[0] if rest else file
    for i, part in enumerate(parts):
        if part == "src" and i + 1 < len(parts):
            return parts[i + 1]
    return Path(file).name or file


def samples(collapsed: Path) -> Iterator[tuple[list[str], int]]:
    """Each distinct stack of a py-spy `raw` file, outermost frame first, and its count."""
    for line in collapsed.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if stack and count_text.isdigit():
            yield stack.split(";"), int(count_text)


def summarize(collapsed: Path, top: int = 14) -> list[tuple[str, float, float]]:
    """(area, inclusive share, self share) for the `top` areas by inclusive share."""
    inclusive: Counter[str] = Counter()
    self_time: Counter[str] = Counter()
    total = 0
    for frames, count in samples(collapsed):
        total += count
        areas = []
        for frame in frames:
            match = _FRAME.match(frame)
            areas.append(area(match["file"]) if match else frame)
        for name in set(areas):
            inclusive[name] += count
        self_time[areas[-1]] += count
    if not total:
        return []
    return [(name, n / total, self_time[name] / total) for name, n in inclusive.most_common(top)]


def hottest_frames(collapsed: Path, top: int = 12) -> list[tuple[str, float]]:
    """The functions most often on top of the stack (self time), with their share."""
    self_time: Counter[str] = Counter()
    total = 0
    for frames, count in samples(collapsed):
        total += count
        match = _FRAME.match(frames[-1])
        name = f"{match['func']} ({area(match['file'])})" if match else frames[-1]
        self_time[name] += count
    return [(name, n / total) for name, n in self_time.most_common(top)] if total else []
