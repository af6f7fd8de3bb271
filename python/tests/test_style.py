"""The package's sources keep the repository's line limit (100 characters, as rustfmt's
max_width for the Rust code): CI has no Python formatter, so this test is the check."""
import pathlib

LIMIT = 100
PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "scoreinv"


def long_lines(root=PACKAGE, limit=LIMIT):
    """``(file, line number, length)`` of every line of ``root``'s .py files over ``limit``."""
    out = []
    for path in sorted(root.rglob("*.py")):
        for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if len(line) > limit:
                out.append((path.name, i, len(line)))
    return out


def test_package_lines_fit_the_limit():
    assert long_lines() == []


def test_a_long_line_is_found(tmp_path):
    (tmp_path / "m.py").write_text("x = 1\n" + "#" * (LIMIT + 1) + "\n", encoding="utf-8")
    assert long_lines(tmp_path) == [("m.py", 2, LIMIT + 1)]
