"""Reading the project's Markdown as its tests need it: fenced blocks with their info strings,
headings as GitHub anchors them, links, inline code; and running a document's runnable blocks in
one shell session."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})(?P<info>[^`]*)$")
SHELL = {"sh", "bash", "shell"}


def user_docs() -> list[Path]:
    """Every document a user reads: the README, docs/ and the benchmarks' own."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), *sorted((ROOT / "bench").glob("*.md"))]


@dataclass
class Block:
    path: Path
    line: int  # of the opening fence, 1-based
    lang: str
    flags: list[str]
    code: str

    @property
    def runnable(self) -> bool:
        return "runnable" in self.flags

    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


@dataclass
class Doc:
    path: Path
    blocks: list[Block] = field(default_factory=list)
    prose: list[tuple[int, str]] = field(default_factory=list)  # (line, text) outside fenced blocks


def parse(path: Path) -> Doc:
    doc, lines = Doc(path), path.read_text().splitlines()
    i = 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if not opening:
            doc.prose.append((i + 1, lines[i]))
            i += 1
            continue
        indent, fence = len(opening["indent"]), opening["fence"]
        info = opening["info"].split()
        body, j = [], i + 1
        while j < len(lines) and not re.match(rf"^[ \t]*{re.escape(fence[0])}{{{len(fence)},}}[ \t]*$", lines[j]):
            body.append(lines[j][indent:] if lines[j][:indent].strip() == "" else lines[j].lstrip())
            j += 1
        lang = info[0] if info else ""
        doc.blocks.append(Block(path, i + 1, lang, info[1:], "\n".join(body) + "\n"))
        i = j + 1
    return doc


def prose_text(doc: Doc) -> str:
    """The text outside fenced blocks, HTML comments removed."""
    text = "\n".join(line for _, line in doc.prose)
    return re.sub(r"<!--.*?-->", "", text, flags=re.DOTALL)


def inline_code(doc: Doc) -> list[str]:
    return re.findall(r"(?<!`)`([^`\n]+)`(?!`)", prose_text(doc))


def anchors(doc: Doc) -> set[str]:
    """The ids GitHub gives the document's headings."""
    seen: dict[str, int] = {}
    result = set()
    for _, line in doc.prose:
        heading = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not heading:
            continue
        text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading[1])  # a link's text only
        slug = re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        result.add(slug if count == 0 else f"{slug}-{count}")
    return result


def links(doc: Doc) -> list[str]:
    """Every link and image target outside code."""
    text = re.sub(r"(?<!`)`[^`\n]+`(?!`)", "", prose_text(doc))
    return re.findall(r"\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)", text)


def broken_links(paths) -> list[str]:
    """``file:target`` for every relative link of ``paths`` to a file that does not exist (or lies
    outside the project) or to an ``#anchor`` that no heading of its document has."""
    broken = []
    for path in paths:
        for target in links(parse(path)):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto:: not ours to check offline
                continue
            file, _, anchor = target.partition("#")
            dest = (path.parent / file).resolve() if file else path
            if file.startswith("/") or not dest.exists() or not dest.is_relative_to(ROOT):
                broken.append(f"{path.name}: {target}")
            elif anchor and (dest.suffix != ".md" or anchor not in anchors(parse(dest))):
                broken.append(f"{path.name}: {target}")
    return broken


def shell_blocks(docs=None) -> list[Block]:
    return [b for path in docs or user_docs() for b in parse(path).blocks if b.lang in SHELL]


# --- Running a document's runnable blocks ------------------------------------------------------

# The docs' variables, one name per thing. A new one is added here, with what it holds.
VARIABLES = {
    "BASE": "where the service runs: http://127.0.0.1:8000 under `make run`",
    "KEY": "an API key with write scope",
    "READ_KEY": "an API key with read scope",
    "ID": "a thread's id",
    "CHAT": "a chat token for the thread $ID",
    "HOOK": "a webhook endpoint's id",
    "MESSAGE": "a message's id",
    "PASSWORD": "a user's password",
    "ACCESS": "a user's access token",
    "REFRESH": "a user's refresh token",
    "CURSOR": "the change feed's nextCursor",
    "PAGE": "one answer of the change feed",
}
MARK = "\x1edocs"  # a line of the session's output that is the runner's own
PRELUDE = r"""set -eEuo pipefail
set -a  # every variable is exported: commands and Python blocks see $ID, $KEY…
# An answer of 400 or more is a failed example (its body is still printed).
curl() { command curl --no-progress-meter --fail-with-body "$@"; }
trap 'printf "\n%s failed %s %s\n" "$__docs_mark" "$__docs_block" "$?" >&2' ERR
"""


@dataclass
class Run:
    outputs: dict[int, str]  # block index -> its stdout
    variables: dict[str, str]  # every NAME= assigned by a block, its last value


def _variables(blocks: list[Block]) -> list[str]:
    names = {m for b in blocks if b.lang in SHELL for m in re.findall(r"^\s*([A-Z][A-Z0-9_]*)=", b.code, re.M)}
    return sorted(names | set(VARIABLES))


def run_blocks(path: Path, env: dict[str, str], workdir: Path, timeout: float = 300) -> Run:
    """Run the runnable blocks of ``path`` in order, in one ``bash`` session in ``workdir``, with
    ``env``; a block that fails fails the run, with the block, where it is and what it printed."""
    blocks = [b for b in parse(path).blocks if b.runnable]
    script = [PRELUDE, f"__docs_mark={shlex.quote(MARK)}"]
    for index, block in enumerate(blocks):
        script.append(f'__docs_block={index}; printf "\\n%s block {index}\\n" "$__docs_mark"')
        if block.lang in SHELL:
            script.append(block.code)
        elif block.lang == "python":
            script.append(f"\"$DOCS_PYTHON\" - <<'__DOCS_PYTHON__'\n{block.code}__DOCS_PYTHON__")
        else:
            raise AssertionError(f"{block.where()}: a runnable block must be sh or python, not {block.lang!r}")
    names = _variables(blocks)
    script.append('printf "\\n%s end\\n" "$__docs_mark"')
    script += [f'printf "%s var {name}=%s\\n" "$__docs_mark" "${{{name}-}}"' for name in names]
    result = subprocess.run(
        ["bash", "-c", "\n".join(script)],
        cwd=workdir,
        env={**env, "DOCS_PYTHON": sys.executable},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    outputs: dict[int, str] = {}
    variables: dict[str, str] = {}
    current = None
    for line in result.stdout.split("\n"):  # not splitlines(): it breaks lines at \x1e too
        if line.startswith(f"{MARK} block "):
            current = int(line.split()[-1])
            outputs[current] = ""
        elif line.startswith(f"{MARK} var "):
            name, _, value = line[len(f"{MARK} var ") :].partition("=")
            variables[name] = value
        elif line == f"{MARK} end":
            current = None
        elif current is not None:
            outputs[current] += line + "\n"
    if result.returncode != 0:
        failed = re.search(rf"{MARK} failed (\d+) (\d+)", result.stderr)
        index = int(failed[1]) if failed else max(outputs, default=0)
        block = blocks[index] if blocks else None
        stderr = re.sub(rf"\n?{MARK} failed \d+ \d+\n", "", result.stderr)
        raise AssertionError(
            f"{block.where() if block else path}: a runnable block failed (status {result.returncode})\n"
            f"--- block\n{block.code if block else ''}--- its output\n{outputs.get(index, '')}"
            f"--- stderr\n{stderr}"
        )
    return Run(outputs, variables)


def scratch_project(workdir: Path) -> None:
    """A directory where the docs' ``.venv/bin/python manage.py …`` is this project's, run by the
    interpreter of this test run, so that files the examples write stay out of the checkout."""
    python = workdir / ".venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} "$@"\n')
    python.chmod(0o755)
    (workdir / "manage.py").symlink_to(ROOT / "manage.py")


def shell_env(**values: str) -> dict[str, str]:
    """The environment of a docs session: this one's, without settings a reader would not have."""
    kept = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_") and k not in VARIABLES}
    return {**kept, **values}
