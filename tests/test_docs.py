"""The docs cannot drift from the code.

Every command in a code block of README.md, CONTRIBUTING.md and the pages under docs/ must be
something this repository has: a Makefile target (as `make help` lists them) with a documented
setting, a script that exists (and knows the flags it is given), a workspace package or test, or
a flag of the two binaries as their `--help` prints it. The configuration tables (docs/configuration.md) must match that
`--help`, flag for flag, with the same environment variables and defaults. Every link resolves,
to a file and a heading in it. What the docs say about the repository's own files (the README's
YAML, the test tables, `make check`'s steps, the CI machine's commands) is read from those files.
docs/README.ja.md translates README.md only: it must show the same commands, output and numbers.

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
import yaml

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
README_JA = REPO / "docs" / "README.ja.md"
CONTRIBUTING = REPO / "CONTRIBUTING.md"
PAGES = sorted(p for p in (REPO / "docs").glob("*.md") if p != README_JA)
TESTING = REPO / "docs" / "testing.md"
CONFIGURATION = REPO / "docs" / "configuration.md"
ENGLISH = [README, CONTRIBUTING, *PAGES]
DOCS = [README, README_JA, CONTRIBUTING, *PAGES]
README_MAX_LINES = 250

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
    if doc in (README, CONTRIBUTING, TESTING):
        assert commands, f"{doc.name} shows no commands: is the block parser broken?"
    problems = [p for words in commands for p in check_command(words, doc.name)]
    assert not problems, "\n".join(problems)


def test_readme_is_short():
    lines = len(README.read_text().splitlines())
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines; the reference goes in docs/"


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


def visible(text: str) -> str:
    """What a reader sees of Markdown: without code blocks and HTML comments."""
    return re.sub(r"<!--.*?-->", "", FENCE.sub("", text), flags=re.S)


def broken_links(doc: Path) -> list[str]:
    missing = []
    for target in re.findall(r"\]\(([^)\s]+)\)", visible(doc.read_text())):
        if "://" in target or target.startswith("mailto:"):
            continue
        file, _, anchor = target.partition("#")
        path = (doc.parent / file).resolve() if file else doc
        if not path.exists():
            missing.append(target)
        elif anchor and (path.suffix != ".md" or anchor not in anchors(path.read_text())):
            missing.append(target)
    return missing


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_links_point_at_files_and_headings(doc):
    missing = broken_links(doc)
    assert not missing, f"{doc.name}: broken links {missing}"


def test_the_link_check_bites(tmp_path):
    (tmp_path / "other.md").write_text("# Other\n\n## A heading\n")
    doc = tmp_path / "doc.md"
    doc.write_text("# Doc\n\n[ok](other.md#a-heading) [ok](#doc) [bad](other.md#nope) "
                   "[bad](gone.md) [bad](#nowhere)\n<!-- [hidden](gone.md) -->\n")
    assert broken_links(doc) == ["other.md#nope", "gone.md", "#nowhere"]


# A reference a reader can follow: an issue or pull request named as owner/repo#N or kubernetes#N
# is a link, and so is "the article" outside the README's first section, which names it.
BARE_REFERENCE = re.compile(r"(?<![\w/\[-])(?:[\w.-]+/)?[\w.-]+#\d+\b")


def bare_references(text: str) -> list[str]:
    text = re.sub(r"\[[^\]]*\]\([^)]*\)|`[^`\n]*`|https?://\S+", "", visible(text))
    return (BARE_REFERENCE.findall(text) + re.findall(r"\b[Ii]ssues? \d+\b", text)
            + re.findall(r"[^.]*\barticle\b[^.]*", text))


@pytest.mark.parametrize("doc", [CONTRIBUTING, *PAGES], ids=lambda p: str(p.relative_to(REPO)))
def test_every_reference_is_a_link(doc):
    assert not bare_references(doc.read_text()), doc.name


def test_the_readme_names_the_article_with_its_sample_repository():
    first = README.read_text().split("\n## ", 1)[0]
    assert "https://github.com/YZ775/k8s-sidecar-example" in first
    assert "Kubernetes 1.28でFeatureGateになったSidecar containersをJobで" in first
    rest = README.read_text().split("\n## ", 1)[1]
    rest = re.sub(r"\[[^\]]*\]\([^)]*\)|`[^`\n]*`", "", visible(rest))
    assert not BARE_REFERENCE.findall(rest) and not re.findall(r"\b[Ii]ssues? \d+\b", rest)


def test_the_reference_check_bites():
    assert bare_references("see kubernetes#123 and kind#4, as the article says.") == [
        "kubernetes#123", "kind#4", "see kubernetes#123 and kind#4, as the article says"]
    assert bare_references("as issue 7 says") == ["issue 7"]
    assert bare_references("see [kubernetes#123](https://x/1) and [the article](../README.md).") == []


def test_layout_names_every_top_level_entry():
    tracked = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True,
                             check=True, timeout=30).stdout.split()
    if not tracked:
        pytest.skip("not a git checkout")
    entries = {path.split("/", 1)[0] for path in tracked}
    section = CONTRIBUTING.read_text().split("## Layout", 1)[1].split("\n## ", 1)[0]
    named = set(re.findall(r"`([^`]+)`", section))
    missing = [e for e in sorted(entries)
               if not any(n == e or n.startswith(e + "/") for n in named)]
    assert not missing, f"CONTRIBUTING.md's Layout does not say what these are for: {missing}"


# --- what the docs say about the repository's own files ---------------------------------------


def subset(part, whole) -> bool:
    """Whether `part` is `whole` with things left out: lists of named items match by name."""
    if isinstance(part, dict):
        return isinstance(whole, dict) and all(k in whole and subset(v, whole[k])
                                               for k, v in part.items())
    if isinstance(part, list):
        if not isinstance(whole, list):
            return False
        if all(isinstance(i, dict) and "name" in i for i in part):
            names = [i["name"] for i in part]
            return names == [w["name"] for w in whole] and all(
                subset(i, w) for i, w in zip(part, whole))
        return part == whole
    return part == whole


def test_the_readmes_yaml_is_an_excerpt_of_the_file_it_names():
    shown = [b for b in blocks(README) if b.info == "yaml"]
    assert len(shown) == 2, "the legacy and the native Job, side by side"
    for block in shown:
        name = re.match(r"# (\S+\.yaml)\n", block.body)
        assert name, f"a YAML block must start with the file it is from: {block.body[:40]!r}"
        excerpt = yaml.safe_load(block.body)
        assert subset(excerpt, yaml.safe_load((REPO / name[1]).read_text())), (
            f"README.md shows {name[1]} as it is not")


def test_the_excerpt_check_bites():
    job = yaml.safe_load((REPO / "job.yaml").read_text())
    spec = {"spec": {"template": {"spec": {"initContainers": [
        {"name": "sidecar", "restartPolicy": "Always"}]}}}}
    assert subset(spec, job)
    spec["spec"]["template"]["spec"]["initContainers"][0]["restartPolicy"] = "Never"
    assert not subset(spec, job)
    assert not subset({"spec": {"template": {"spec": {"containers": [{"name": "sidecar"}]}}}}, job)


def test_make_check_runs_what_the_docs_say():
    # The steps check's recipe runs, in order, before its summary.
    recipe = re.search(r"^check:.*\n((?:\t.*\n)+)", (REPO / "Makefile").read_text(), re.M)[1]
    steps = re.search(r"for step in ([\w -]+); do", recipe)[1].split()
    said = " ".join(f"`make {s}`" for s in steps)
    for doc in (TESTING, CONTRIBUTING):
        sentence = re.search(r"`make check` runs ((?:`make [\w-]+`(?:, | and )?)+)",
                             doc.read_text())
        assert sentence, f"{doc.name} does not say what `make check` runs"
        assert re.findall(r"`make ([\w-]+)`", sentence[1]) == steps, (doc.name, said)
    table = TESTING.read_text().split("## What `make check` runs", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `make ([\w-]+)`", table, re.M)
    assert list(dict.fromkeys(rows)) == steps


def test_the_testing_page_names_every_test_file():
    text = TESTING.read_text()
    python = sorted(p.relative_to(REPO).as_posix() for p in (REPO / "tests").glob("test_*.py"))
    rows = re.findall(r"^\| `(tests/[\w.]+\.py)` \|", text, re.M)
    assert sorted(r for r in rows if "/test_" in r) == python
    assert "tests/conftest.py" in rows
    rust = sorted(p.relative_to(REPO).as_posix() for p in REPO.glob("*/tests/*.rs"))
    assert [r for r in rust if f"`{r}`" not in text] == []
    # Each cluster config is named where the versions are, and each is one `make demo` runs.
    clusters = sorted(p.name for p in REPO.glob("cluster*.yaml"))
    assert [c for c in clusters if f"`{c}`" not in README.read_text()] == []


def test_the_ci_machine_commands_are_what_ci_run_runs():
    def chain(text: str) -> list[str]:
        return shlex.split(re.sub(r"\\\n", " ", text), comments=True)
    section = TESTING.read_text().split("## This repository's CI machine", 1)[1]
    (shown,) = [b.body for b in blocks_of(section) if b.info == "sh"][:1]
    script = (REPO / ".ci" / "run").read_text()
    body = script.split('cd "$(dirname "${BASH_SOURCE[0]}")/.."\n', 1)[1]
    assert chain(shown) == chain(body)


def blocks_of(text: str) -> list[Block]:
    return [Block(m["info"].strip(), m["body"]) for m in FENCE.finditer(text)]


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


@pytest.mark.parametrize("command", ["app", "sidecar", "sidecar wait-ready"])
def test_configuration_table_matches_help(command):
    doc = CONFIGURATION
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
    # A date as each language writes it: 2023-08-30 and 2023年8月30日 are one date.
    text = re.sub(r"(\d{4})(?:-(\d{2})-(\d{2})\b|年(\d{1,2})月(\d{1,2})日)",
                  lambda m: f"{m[1]}/{int(m[2] or m[4])}/{int(m[3] or m[5])}", text)
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
