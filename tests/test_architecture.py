"""ARCHITECTURE.md describes the code as it is: every module of the packages under lib/ has its row,
and no file of the repository points to design or style notes kept outside it."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ARCHITECTURE = ROOT / "ARCHITECTURE.md"


def _modules(package: str) -> list[str]:
    """The modules of ``lib/<package>``, as ARCHITECTURE.md names them: ``data`` or ``check.core`` in
    poisonlab (the subpackage itself as ``check``), ``poisonlab_course.grade`` elsewhere."""
    folder = ROOT / "lib" / package
    names = []
    for path in sorted(folder.rglob("*.py")):
        parts = list(path.relative_to(folder).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if parts:
            names.append(".".join(parts if package == "poisonlab" else [package, *parts]))
    return names


@pytest.mark.parametrize("package", ["poisonlab", "poisonlab_course"])
def test_every_module_is_in_the_architecture_page(package):
    text = ARCHITECTURE.read_text()
    modules = _modules(package)
    assert modules
    missing = [m for m in modules if f"`{m}`" not in text]
    assert not missing, f"ARCHITECTURE.md does not describe {missing}: add a row to its module table"


def _tracked_files() -> list[Path]:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    return [ROOT / name for name in out.decode().split("\0") if name]


def test_no_file_points_to_notes_outside_the_repository():
    """The starting design and style notes were folded into ARCHITECTURE.md; nothing may send a
    reader to the old files, which are not in the repository."""
    outside = re.compile(r"\b(?:DESIGN|STYLE)\.md\b")
    found = []
    for path in _tracked_files():
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, FileNotFoundError, IsADirectoryError):
            continue  # binary, or deleted from the work tree but not yet from the index
        found += [f"{path.relative_to(ROOT)}: {m.group(0)}" for m in outside.finditer(text)]
    assert not found, f"point to ARCHITECTURE.md instead: {found}"
