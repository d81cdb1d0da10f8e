"""Every code example of the documentation (docs/**/*.md) runs, so that the pages cannot drift from the code.

The convention, per page, in a fresh temporary directory that is the working directory:
- a fenced block ```c title="NAME.bpf.c"``` is written to NAME.bpf.c and compiled (clang -O2 -g -target bpf, with
  cbpf's include dir and a vmlinux.h of the running kernel) to NAME.bpf.o, before any python block runs; a ```c
  block with another title (a header, "common.h") is only written;
- the ```python blocks are executed in order, in one namespace, as root against the real kernel (in a child
  interpreter: a page cannot disturb the test process, and what it booted goes with it);
- ```sh, ```text and every other block are not run.
README.md's example runs too, with the C blocks of docs/tutorial.md (where its counter.bpf.c is written out).
Blocks may be indented (inside a list item or an admonition); the indentation of the fence is removed.
A failure names the page, the block's line and the error (tracebacks point into the .md file).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import traceback
from pathlib import Path
from typing import NamedTuple

import pytest

# run as a script (each page's examples in a child), the tests' directory is not on the path when PYTHONSAFEPATH is
# set, as scripts/sanitized sets it
if str(Path(__file__).resolve().parent) not in sys.path:
    sys.path.append(str(Path(__file__).resolve().parent))
from conftest import compile_bpf  # noqa: E402

DOCS = Path(__file__).resolve().parent.parent / "docs"
README = DOCS.parent / "README.md"

if not DOCS.is_dir():  # a copy of tests/ without the documentation beside it
    pytest.skip(f"no documentation at {DOCS}", allow_module_level=True)


class Block(NamedTuple):
    language: str
    title: str | None
    line: int  # the first line of the code, 1-based
    code: str


FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^`\n]*)$")
TITLE = re.compile(r"""title=(?:"([^"]*)"|'([^']*)'|(\S+))""")


def blocks(text: str) -> list[Block]:
    """The fenced code blocks of a Markdown page, in order."""
    found = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if m is None:
            i += 1
            continue
        indent, fence, info = m["indent"], m["fence"], m["info"].strip()
        language = info.split()[0].lstrip(".{").lower() if info else ""
        t = TITLE.search(info)
        title = next(g for g in t.groups() if g is not None) if t else None
        body = []
        j = i + 1
        while j < len(lines):
            closing = lines[j].strip()
            if closing.startswith(fence[0] * len(fence)) and set(closing) == {fence[0]}:
                break
            line = lines[j]
            body.append(line[len(indent):] if line.startswith(indent) else line.lstrip())
            j += 1
        found.append(Block(language, title, i + 2, "\n".join(body) + "\n"))
        i = j + 1
    return found


def runnable(page: Path) -> bool:
    return any(b.language == "python" or (b.language == "c" and b.title) for b in blocks(page.read_text()))


PAGES = sorted(p for p in DOCS.rglob("*.md") if runnable(p))
if README.exists():
    PAGES.append(README)
# a page whose C comes from another page
C_FROM = {README: DOCS / "tutorial.md"}


def page_id(page: Path) -> str:
    return str(page.relative_to(DOCS)) if page.is_relative_to(DOCS) else page.name


def test_the_block_parser_reads_fences_titles_and_indentation() -> None:
    page = ('# t\n\n```c title="a.bpf.c"\nint x;\n```\n\n- item\n\n    ```python\n    x = 1\n    if x:\n'
            '        y = 2\n    ```\n\n~~~sh\nmake\n~~~\n````text\n```\n````\n')
    assert blocks(page) == [
        Block("c", "a.bpf.c", 4, "int x;\n"),
        Block("python", None, 10, "x = 1\nif x:\n    y = 2\n"),
        Block("sh", None, 16, "make\n"),
        Block("text", None, 19, "```\n"),
    ]


def test_the_documentation_has_examples_to_run() -> None:
    # the tutorial and the guides have code; if the parser found none, this suite would test nothing
    assert DOCS / "tutorial.md" in PAGES and README in PAGES
    assert len(PAGES) >= 4, PAGES


@pytest.mark.kernel
@pytest.mark.parametrize("page", PAGES, ids=[page_id(p) for p in PAGES])
def test_page_examples_run(page: Path, tmp_path: Path, bpf_build_dir: Path) -> None:
    page_blocks = blocks(page.read_text())
    c_blocks = blocks(C_FROM[page].read_text()) if page in C_FROM else page_blocks
    for b in c_blocks:
        if b.language == "c" and b.title:
            target = tmp_path / b.title
            if target.parent != tmp_path:
                pytest.fail(f"{page.name}:{b.line}: a C block's title must be a plain file name: {b.title!r}")
            target.write_text(b.code)
    for b in c_blocks:
        if b.language == "c" and b.title and b.title.endswith(".bpf.c"):
            try:
                compile_bpf(tmp_path / b.title, tmp_path, ("-I", str(bpf_build_dir)))
            except RuntimeError as e:
                pytest.fail(f"{page.relative_to(DOCS.parent)}:{b.line}: {e}", pytrace=False)
    python = [{"line": b.line, "code": b.code} for b in page_blocks if b.language == "python"]
    if not python:
        return
    r = subprocess.run([sys.executable, __file__, str(page.relative_to(DOCS.parent))], input=json.dumps(python),
                       cwd=tmp_path, capture_output=True, text=True, timeout=300)
    if r.returncode == MISSING_MODULE and os.environ.get("CBPF_DOCS_OPTIONAL_MODULES"):
        # an installed wheel tested with only its test requirements (scripts/test-installed): a page about an
        # optional extra (a Prometheus client...) cannot run there; the source tree's suite runs it
        pytest.skip(f"{page.name} needs {r.stderr.strip().splitlines()[-1]}, not installed here")
    if r.returncode != 0:
        pytest.fail(f"{page.relative_to(DOCS.parent)}: an example failed:\n{r.stderr[-4000:]}", pytrace=False)


MISSING_MODULE = 3  # the child's exit status when a page imports a module that is not installed (other than cbpf)


def run_blocks(page_name: str, python: list[dict[str, object]]) -> None:
    """In the child: each block compiled with the page's name and line numbers, so a traceback points into the
    page, then run in the page's one namespace."""
    namespace: dict[str, object] = {"__name__": "__main__"}
    for b in python:
        line, code = int(str(b["line"])), str(b["code"])
        try:
            exec(compile("\n" * (line - 1) + code, page_name, "exec"), namespace)
        except ModuleNotFoundError as e:
            if e.name is None or e.name.split(".")[0] == "cbpf":
                raise
            traceback.print_exc()
            print(f"the module {e.name!r}", file=sys.stderr)
            sys.exit(MISSING_MODULE)


if __name__ == "__main__":
    run_blocks(sys.argv[1], json.loads(sys.stdin.read()))


def test_the_link_checker_finds_missing_pages_and_anchors(tmp_path: Path) -> None:
    checker = DOCS.parent / "scripts" / "check-links"
    if not checker.exists():
        pytest.skip("no scripts/check-links beside the tests")
    (tmp_path / "sub").mkdir()
    (tmp_path / "index.html").write_text('<a href="sub/">ok</a> <a href="sub/#there">ok</a> <a href="#top">ok</a>'
                                         '<h1 id="top">t</h1> <a href="https://example.org/x">external</a>'
                                         '<img src="/base/img.png">')
    (tmp_path / "img.png").write_bytes(b"")
    (tmp_path / "sub" / "index.html").write_text('<p id="there">x</p> <a href="../index.html#top">ok</a>')
    good = subprocess.run([sys.executable, str(checker), str(tmp_path), "/base/"], capture_output=True, text=True)
    assert good.returncode == 0, good.stderr
    assert "5 internal links in 2 pages, 0 broken" in good.stdout  # the external one is not followed
    (tmp_path / "sub" / "index.html").write_text('<a href="../missing/">x</a> <a href="../index.html#nowhere">y</a>')
    bad = subprocess.run([sys.executable, str(checker), str(tmp_path), "/base/"], capture_output=True, text=True)
    assert bad.returncode == 1
    assert "sub/index.html: ../missing/ (no such file in the site)" in bad.stderr
    assert "sub/index.html: ../index.html#nowhere (no id 'nowhere' in index.html)" in bad.stderr
    assert "index.html: sub/#there (no id 'there' in sub/index.html)" in bad.stderr  # the anchor went with it
    assert "6 internal links in 2 pages, 3 broken" in bad.stdout
