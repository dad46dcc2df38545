"""The docs cannot drift from the code.

Every command in a code block of README.md, docs/README.ja.md and CONTRIBUTING.md must be
something this repository has: a Makefile target (as `make help` lists them) with a documented
setting, a script that exists (and knows the flags it is given), a workspace package or test, or
a flag of the two binaries as their `--help` prints it. The configuration tables must match that
`--help`, flag for flag, with the same environment variables and defaults. The Japanese README
must show the same commands, the same output and the same numbers as the English one.

Code blocks are read by their info string: `sh` blocks hold commands (a `#` starts a comment),
`console` blocks hold commands after `$ ` followed by their output, and any other block
(`text`, `mermaid`, `yaml`) holds no commands.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
README_JA = REPO / "docs" / "README.ja.md"
CONTRIBUTING = REPO / "CONTRIBUTING.md"
DOCS = [README, README_JA, CONTRIBUTING]

FENCE = re.compile(r"^```(?P<info>[^\n`]*)\n(?P<body>.*?)^```[ \t]*$", re.M | re.S)
COMMAND_BLOCKS = {"sh", "shell", "bash", "console"}
OPERATORS = {"&&", "||", "|", ";"}
OUTPUT_FLAGS = {"--out", "--output", "-o"}

# Tools from outside this repository that the docs may show. Their arguments are still checked
# when they name a file of this repository (job.yaml, cluster.yaml, ...).
EXTERNAL = {"kubectl", "kind", "docker", "podman", "curl", "git", "python3", "export", "cd", "kill",
            "rustup", "apt-get", "sudo", "unshare"}
# Arguments that look like a file of this repository.
REPO_FILE = re.compile(r"^[\w.][\w./-]*\.(?:ya?ml|json|sh|py|toml|txt|env|rs|md|conf)$")


@dataclass(frozen=True)
class Block:
    info: str
    body: str


def blocks(path: Path) -> list[Block]:
    text = path.read_text()
    return [Block(m["info"].strip(), m["body"]) for m in FENCE.finditer(text)]


def command_lines(block: Block) -> list[str]:
    """The command lines of a block: every line of an `sh` block, `$ ` lines of a `console`."""
    if block.info not in COMMAND_BLOCKS:
        return []
    lines = []
    pending = ""
    for line in block.body.splitlines():
        if block.info == "console":
            if not line.startswith("$ "):
                continue
            line = line[2:]
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        line = (pending + line).strip()
        pending = ""
        if line and not line.startswith("#"):
            lines.append(line)
    return lines


def simple_commands(line: str) -> list[list[str]]:
    """Splits a shell line on &&, ||, | and ; into word lists, comments dropped.

    `eval "$(cmd)"` and `$(cmd)` contribute the inner command too.
    """
    lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|")
    lexer.whitespace_split = True
    lexer.commenters = "#"
    words = list(lexer)
    commands: list[list[str]] = [[]]
    for word in words:
        if word in OPERATORS:
            commands.append([])
        else:
            commands[-1].append(word)
    for inner in re.findall(r"\$\(([^()]*)\)", line):
        commands.extend(simple_commands(inner))
    return [c for c in commands if c and c[0] != "eval"]


def all_commands(path: Path) -> list[list[str]]:
    return [
        words
        for block in blocks(path)
        for line in command_lines(block)
        for words in simple_commands(line)
    ]


# --- what the repository has ---------------------------------------------------------------


@cache
def make_targets() -> set[str]:
    out = subprocess.run(["make", "--no-print-directory", "-s", "help"], cwd=REPO,
                         capture_output=True, text=True, check=True, timeout=60).stdout
    targets = {line.split()[0] for line in out.splitlines() if line.strip()}
    assert {"help", "demo", "check"} <= targets, out
    return targets


@cache
def make_settings() -> set[str]:
    """The settings the Makefile documents in its header ("#   NAME  what it does")."""
    text = (REPO / "Makefile").read_text()
    return set(re.findall(r"^#   ([A-Z][A-Z0-9_]+)\s", text, re.M))


@cache
def workspace_packages() -> set[str]:
    text = (REPO / "Cargo.toml").read_text()
    members = re.search(r"^members\s*=\s*\[(.*?)\]", text, re.M | re.S)
    assert members, "Cargo.toml has no workspace members"
    return set(re.findall(r'"([^"]+)"', members[1]))


@dataclass(frozen=True)
class Help:
    text: str
    flags: frozenset[str]
    subcommands: frozenset[str]
    options: dict  # --flag -> (env or None, default or None)


def binaries_built() -> Path:
    # Cheap when `cargo test` (which `make test` runs first) has built them already.
    subprocess.run(["cargo", "build", "--locked", "--quiet", "--bin", "app", "--bin", "sidecar"],
                   cwd=REPO, check=True, timeout=900)
    return REPO / "target" / "debug"


@cache
def help_of(*command: str) -> Help:
    """`--help` of `app`, `sidecar` or `sidecar wait-ready`, parsed."""
    binary, *sub = command
    path = binaries_built() / binary
    text = subprocess.run([str(path), *sub, "--help"], capture_output=True, text=True,
                          check=True, timeout=30, env={"PATH": os.environ.get("PATH", "")}).stdout
    options: dict[str, tuple[str | None, str | None]] = {}
    # One option per paragraph: "      --flag <VALUE>\n          help...\n          [env: X=]".
    for chunk in re.split(r"\n(?=\s{2,}(?:-\w, )?--)", text):
        head = re.match(r"\s+(?:-\w, )?(--[a-z][a-z-]*)", chunk)
        if not head:
            continue
        env = re.search(r"\[env: ([A-Z_][A-Z0-9_]*)=", chunk)
        default = re.search(r"\[default: ([^\]]+)\]", chunk)
        options[head[1]] = (env[1] if env else None, default[1] if default else None)
    commands = re.search(r"^Commands:\n(.*?)(?:\n\n|\Z)", text, re.M | re.S)
    subcommands = set(re.findall(r"^  ([a-z][a-z-]*)", commands[1], re.M)) if commands else set()
    subcommands.discard("help")
    flags = set(options) | {"-h", "-V"}
    return Help(text, frozenset(flags), frozenset(subcommands), options)


def check_binary(binary: str, args: list[str], where: str) -> list[str]:
    problems = []
    command = [binary]
    if args and not args[0].startswith("-"):
        sub = args[0]
        if sub not in help_of(binary).subcommands:
            return [f"{where}: `{binary} {sub}`: no such subcommand"]
        command.append(sub)
        args = args[1:]
    known = help_of(*command).flags
    for arg in args:
        if arg.startswith("-"):
            flag = arg.split("=", 1)[0]
            if flag not in known:
                problems.append(f"{where}: `{' '.join(command)} {flag}`: not in its --help")
    return problems


def check_command(words: list[str], where: str) -> list[str]:
    words = list(words)
    # Leading NAME=value assignments: for make they are settings, otherwise environment.
    assignments = []
    while words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", words[0]):
        assignments.append(words.pop(0).split("=", 1)[0])
    if not words:
        return []
    program, args = words[0], words[1:]
    problems = []
    for before, arg in zip([""] + args, args):
        # What a command writes need not exist yet.
        if before in OUTPUT_FLAGS or arg.split("=", 1)[0] in OUTPUT_FLAGS:
            continue
        value = arg.split("=", 1)[-1]
        if REPO_FILE.match(value) and "://" not in value and not (REPO / value).exists():
            problems.append(f"{where}: `{' '.join(words)}`: {value} does not exist")

    if program == "make":
        for arg in args:
            if "=" in arg:
                name = arg.split("=", 1)[0]
                if name not in make_settings():
                    problems.append(f"{where}: make setting {name} is not in the Makefile's list")
            elif arg.startswith("-"):
                continue
            elif arg not in make_targets():
                problems.append(f"{where}: `make {arg}`: no such target in `make help`")
        for name in assignments:
            if name not in make_settings() and name != "CI":
                problems.append(f"{where}: {name}=... is not a setting the Makefile lists")
        return problems

    if program == "cargo":
        packages = [args[i + 1] for i, a in enumerate(args[:-1]) if a in ("-p", "--package")]
        for package in packages:
            if package not in workspace_packages():
                problems.append(f"{where}: cargo -p {package}: not a workspace member")
        tests = [args[i + 1] for i, a in enumerate(args[:-1]) if a == "--test"]
        for test in tests:
            if not any((REPO / p / "tests" / f"{test}.rs").exists() for p in packages or
                       workspace_packages()):
                problems.append(f"{where}: cargo --test {test}: no such integration test")
        if args[:1] == ["run"] and "--" in args and packages:
            binary_args = args[args.index("--") + 1:]
            problems += check_binary(packages[0], binary_args, where)
        return problems

    if program in ("app", "sidecar", "/sidecar") or re.fullmatch(
            r"(?:\./)?target/(?:debug|release)/(?:app|sidecar)", program):
        return problems + check_binary(Path(program).name, args, where)

    if "/" in program:
        path = REPO / program
        if not path.is_file():
            return problems + [f"{where}: {program} does not exist"]
        if program.endswith("/pytest"):
            return problems
        if not os.access(path, os.X_OK):
            problems.append(f"{where}: {program} is not executable")
        script = path.read_text(errors="replace")
        for arg in args:
            flag = arg.split("=", 1)[0]
            if flag.startswith("--") and flag not in script:
                problems.append(f"{where}: `{program} {flag}`: the script has no such flag")
        return problems

    if program in ("pytest",) or program in EXTERNAL:
        return problems
    return problems + [f"{where}: `{program}` is neither in this repository nor a known tool"]


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_every_command_in_a_code_block_exists(doc):
    commands = all_commands(doc)
    assert commands, f"{doc.name} shows no commands: is the block parser broken?"
    problems = [p for words in commands for p in check_command(words, doc.name)]
    assert not problems, "\n".join(problems)


def test_quick_start_is_exactly_the_two_commands():
    text = README.read_text()
    section = text.split("## Quick start", 1)[1]
    first = next(b for b in FENCE.finditer(section))
    lines = command_lines(Block(first["info"].strip(), first["body"]))
    assert [shlex.split(line, comments=True) for line in lines] == [["make", "demo"],
                                                                     ["make", "check"]]


def anchors(text: str) -> set[str]:
    """The anchors GitHub gives the headings: lower case, punctuation dropped, spaces to -."""
    return {
        re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        for heading in re.findall(r"^#{1,6} (.+)$", text, re.M)
    }


@pytest.mark.parametrize("readme", [README, README_JA], ids=["en", "ja"])
def test_contents_lists_every_section_in_order(readme):
    # The table of contents is the second-level list under the first `##` heading; it must name
    # every `##` and `###` heading after it, in order and at its level, so none is left out.
    text = FENCE.sub("", readme.read_text())
    first, *rest = re.findall(r"^(##|###) (.+)$", text, re.M)
    listed = re.findall(r"^( *)- \[(.+)\]\(#[^)]+\)$", text.split("\n## ", 2)[1], re.M)
    assert [(len(indent) // 2, title) for indent, title in listed] == [
        (len(level) - 2, title) for level, title in rest
    ], f"{readme.name}: the contents under '{first[1]}' do not match the headings"


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_links_point_at_files_and_headings(doc):
    text = FENCE.sub("", doc.read_text())
    missing = []
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if "://" in target or target.startswith("mailto:"):
            continue
        if target.startswith("#"):
            if target[1:] not in anchors(text):
                missing.append(target)
            continue
        path = (doc.parent / target.split("#", 1)[0]).resolve()
        if not path.exists():
            missing.append(target)
    assert not missing, f"{doc.name}: broken links {missing}"


def test_layout_names_every_top_level_entry():
    tracked = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True,
                             check=True, timeout=30).stdout.split()
    if not tracked:
        pytest.skip("not a git checkout")
    entries = {path.split("/", 1)[0] for path in tracked} - {"README.md"}
    section = README.read_text().split("## Layout", 1)[1].split("\n## ", 1)[0]
    named = set(re.findall(r"`([^`]+)`", section))
    missing = [e for e in sorted(entries)
               if not any(n == e or n.startswith(e + "/") for n in named)]
    assert not missing, f"README.md's Layout does not say what these are for: {missing}"


# --- the configuration reference ------------------------------------------------------------


def config_tables(path: Path) -> dict[str, list[list[str]]]:
    """The tables under the configuration headings, keyed by the command they describe."""
    text = path.read_text()
    tables: dict[str, list[list[str]]] = {}
    for heading in re.finditer(r"^### `(app|sidecar|sidecar wait-ready)`.*$", text, re.M):
        rest = text[heading.end():]
        end = re.search(r"^#", rest, re.M)
        section = rest[: end.start()] if end else rest
        rows = [
            [cell.strip() for cell in line.strip().strip("|").split("|")]
            for line in section.splitlines()
            if line.startswith("|") and not re.match(r"^\|[-| ]+\|$", line.strip())
        ]
        tables[heading[1]] = rows[1:]  # without the header row
    return tables


@pytest.mark.parametrize("doc", [README, README_JA], ids=lambda p: str(p.relative_to(REPO)))
@pytest.mark.parametrize("command", ["app", "sidecar", "sidecar wait-ready"])
def test_configuration_table_matches_help(doc, command):
    tables = config_tables(doc)
    assert command in tables, f"{doc.name}: no configuration table for `{command}`"
    help_ = help_of(*command.split())
    documented: dict[str, tuple[str | None, str]] = {}
    env_only = set()
    for flag_cell, env_cell, default_cell, *_ in tables[command]:
        flag = re.search(r"--[a-z][a-z-]*", flag_cell)
        env = re.search(r"`([A-Z_][A-Z0-9_]*)`", env_cell)
        if flag:
            documented[flag[0]] = (env[1] if env else None, default_cell)
        elif env:
            env_only.add(env[1])
    expected = {f for f in help_.options if f not in ("--help", "--version")}
    assert set(documented) == expected, f"{doc.name} `{command}`: flags differ from --help"
    for flag, (env, default_cell) in documented.items():
        help_env, help_default = help_.options[flag]
        assert env == help_env, f"{doc.name} `{command} {flag}`: env {env}, --help says {help_env}"
        if help_default is not None:
            assert f"`{help_default}`" in default_cell, (
                f"{doc.name} `{command} {flag}`: default {default_cell!r}, --help says "
                f"{help_default}")
        else:
            assert "`" not in default_cell, f"{doc.name} `{command} {flag}`: has no default"
    for env in env_only:
        assert env in help_.text, f"{doc.name} `{command}`: {env} is not in its --help"


# --- the Japanese README against the English one --------------------------------------------


def comparable_blocks(path: Path) -> list[str]:
    """Code blocks as they must agree across languages: commands without their comments, and
    the output of console blocks as it is. Diagrams are translated, so they are left out."""
    result = []
    for block in blocks(path):
        if block.info == "mermaid":
            continue
        if block.info == "sh":
            result.append("\n".join(shlex.join(shlex.split(line, comments=True))
                                    for line in command_lines(block)))
        else:
            result.append(block.body)
    return result


def numbers(path: Path) -> set[str]:
    text = path.read_text()
    text = re.sub(r"<!--.*?-->", "", text, flags=re.S)
    text = FENCE.sub("", text)
    text = re.sub(r"\]\([^)]*\)", "]", text)  # link targets: anchors differ by language
    return set(re.findall(r"\d+(?:\.\d+)*", text))


def test_japanese_readme_shows_the_same_commands_and_output():
    english, japanese = comparable_blocks(README), comparable_blocks(README_JA)
    assert japanese == english


def test_japanese_readme_has_the_same_numbers():
    english, japanese = numbers(README), numbers(README_JA)
    assert japanese == english, (
        f"only in README.md: {sorted(english - japanese)}; "
        f"only in docs/README.ja.md: {sorted(japanese - english)}")


# --- the checks above must be able to fail --------------------------------------------------


@pytest.mark.parametrize(("line", "needle"), [
    ("make demo-everything", "no such target"),
    ("make demo FLAVOUR=1", "FLAVOUR"),
    ("kubectl apply -f jobs.yaml", "jobs.yaml does not exist"),
    ("scripts/nope.sh", "does not exist"),
    ("scripts/bench.py --turbo", "no such flag"),
    ("cargo run -p sidecar -- --port 8080", "--port"),
    ("cargo test -p nope", "not a workspace member"),
    ("target/debug/app --sleepy 1s", "--sleepy"),
    ("/sidecar wait-ready --uri http://127.0.0.1:8080/readyz", "--uri"),
    ("sidecar serve", "no such subcommand"),
    ("frobnicate --now", "neither in this repository"),
])
def test_the_command_check_bites(line, needle):
    problems = [p for words in simple_commands(line) for p in check_command(words, "doc")]
    assert any(needle in p for p in problems), problems


def test_the_command_check_accepts_what_exists():
    for line in [
        "make demo", "make demo K8S=1.28", "DEMO=pod make demo", "CI=true make check",
        'eval "$(.ci/podman-env.sh)"', "scripts/kind-demo.sh timeline native tests/fixtures/native-1.37.json",
        "cargo test -p sidecar --test lifecycle", "cargo run -p app -- --sleep 5s",
        "/sidecar wait-ready --url http://127.0.0.1:8080/readyz --timeout 30s",
        "kubectl apply -f job.yaml", ".venv/bin/pytest tests/test_docs.py",
    ]:
        problems = [p for words in simple_commands(line) for p in check_command(words, "doc")]
        assert not problems, (line, problems)
