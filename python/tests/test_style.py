"""Every tracked Python file keeps the repository's line limit (100 characters, as rustfmt's
max_width for the Rust code): CI has no Python formatter, so this test is the check."""
import pathlib
import subprocess

LIMIT = 100
ROOT = pathlib.Path(__file__).resolve().parents[2]


def python_files(root=ROOT):
    """The repository's tracked .py files (``git ls-files``); without git, those under python/,
    scripts/ and examples/ outside .venv and target."""
    try:
        out = subprocess.run(["git", "ls-files", "*.py"], cwd=root, capture_output=True,
                             text=True, check=True).stdout
        return [root / f for f in out.splitlines()]
    except (OSError, subprocess.CalledProcessError):
        return [p for d in ("python", "scripts", "examples") for p in (root / d).rglob("*.py")
                if not {".venv", "target"} & set(p.relative_to(root).parts)]


def long_lines(files=None, limit=LIMIT, root=ROOT):
    """``(path, line number, length)`` of every line of ``files`` over ``limit`` characters."""
    out = []
    for path in sorted(python_files(root) if files is None else files):
        for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if len(line) > limit:
                out.append((path.relative_to(root).as_posix(), i, len(line)))
    return out


def test_python_lines_fit_the_limit():
    assert long_lines() == []


def test_a_long_line_is_found(tmp_path):
    (tmp_path / "m.py").write_text("x = 1\n" + "#" * (LIMIT + 1) + "\n", encoding="utf-8")
    assert long_lines([tmp_path / "m.py"], root=tmp_path) == [("m.py", 2, LIMIT + 1)]
