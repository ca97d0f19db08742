"""Running the examples of a docs page: its first Python block, then the commands of its first console block."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parents[1] / "docs"


def run_doc_example(page: str, checkpoint: Path, folder: Path, monkeypatch) -> list[str]:
    """Run ``docs/<page>``'s example in ``folder`` with ``checkpoint`` standing in for sam2.1_hiera_tiny (the
    tiny random-weight model); returns the commands run. Fails with the command and its stderr."""
    text = (DOCS / page).read_text()
    code = re.findall(r"```python\n(.*?)```", text, re.S)[0]
    commands = [c for c in re.findall(r"```console\n(.*?)```", text, re.S)[0].splitlines() if c.strip()]
    monkeypatch.chdir(folder)
    exec(compile(code.replace('"sam2.1_hiera_tiny"', repr(str(checkpoint))), f"docs/{page}", "exec"), {})
    exe = {"napari-sam2": str(Path(sys.executable).parent / "napari-sam2"), "python": sys.executable}
    for line in commands:
        args = [str(checkpoint) if a == "sam2.1_hiera_tiny" else a for a in shlex.split(line)]
        proc = subprocess.run([exe.get(args[0], args[0]), *args[1:]], capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, (line, proc.stderr[-2000:])
    return commands
