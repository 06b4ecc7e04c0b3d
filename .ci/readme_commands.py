"""Print README's two quickstart commands, one per line, exactly as README.md spells them.

CI runs what this prints, so CI can never pass while the commands a new user copies fail.
The quickstart is the ``## Quickstart`` section; its first two fenced ``bash`` blocks are the
train command and the test command, each a single line.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path


def quickstart_commands(readme: str) -> list[str]:
    section = readme.split("\n## Quickstart\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```bash\n(.*?)```", section, flags=re.DOTALL)
    commands = [block.strip() for block in blocks[:2]]
    if len(commands) != 2 or any("\n" in command for command in commands):
        raise SystemExit("README's Quickstart must open with two one-line bash blocks")
    return commands


if __name__ == "__main__":
    root = Path(__file__).resolve().parents[1]
    sys.stdout.write("\n".join(quickstart_commands((root / "README.md").read_text())) + "\n")
