"""The GitHub workflows: schema-valid, clean under zizmor, and pinned the way they claim.
They cannot run here; this is everything that can be checked without GitHub."""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
NAMES = [w.name for w in WORKFLOWS]


def tool(name):
    exe = Path(sys.executable).with_name(name)
    found = str(exe) if exe.exists() else shutil.which(name)
    assert found, f"{name} is not installed: pip install -r tests/requirements.txt"
    return found


def load(path):
    # PyYAML reads the key `on` as True; the workflow schema check runs on the raw text.
    return yaml.safe_load(path.read_text())


def steps(workflow):
    for job in workflow["jobs"].values():
        yield from job["steps"]


def test_both_workflows_exist():
    assert NAMES == ["ci.yml", "e2e.yml"]


@pytest.mark.parametrize("path", WORKFLOWS, ids=NAMES)
def test_schema(path):
    result = subprocess.run(
        [tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_zizmor_finds_nothing():
    result = subprocess.run(
        [tool("zizmor"), "--offline", "--persona=auditor", "--format=json", *map(str, WORKFLOWS)],
        capture_output=True,
        text=True,
        check=False,
    )
    findings = json.loads(result.stdout)
    summary = [(f["ident"], f["determinations"]["severity"]) for f in findings]
    assert summary == [], result.stdout
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("path", WORKFLOWS, ids=NAMES)
def test_actions_are_pinned_by_commit_with_a_version_comment(path):
    text = path.read_text()
    uses = re.findall(r"^\s*(?:- )?uses: (\S+)(.*)$", text, re.M)
    assert uses
    for ref, comment in uses:
        assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", ref), ref
        assert re.fullmatch(r" # v\d+\.\d+\.\d+", comment), (ref, comment)


@pytest.mark.parametrize("path", WORKFLOWS, ids=NAMES)
def test_least_privilege(path):
    workflow = load(path)
    assert workflow["permissions"] == {}
    for name, job in workflow["jobs"].items():
        assert job["permissions"] == {"contents": "read"}, name
        assert job["timeout-minutes"] <= 30, name
    for step in steps(workflow):
        if step.get("uses", "").startswith("actions/checkout@"):
            assert step["with"]["persist-credentials"] is False


@pytest.mark.parametrize("path", WORKFLOWS, ids=NAMES)
def test_no_expressions_inside_run_scripts(path):
    # Values reach scripts through env:, never pasted into the script text.
    for step in steps(load(path)):
        assert "${{" not in step.get("run", ""), step.get("name")


def test_ci_runs_the_whole_check_list():
    runs = "\n".join(step.get("run", "") for step in steps(load(ROOT / ".github/workflows/ci.yml")))
    for command in (
        "cargo fmt --all --check",
        "cargo clippy --workspace --all-targets --locked -- -D warnings",
        "cargo test --workspace --locked",
        "hadolint docker/Dockerfile",
        "kubernetes-validate --strict job.yaml job-legacy.yaml",
        "pytest tests",
    ):
        assert command in runs


def test_e2e_matrix_pairs_each_node_image_with_its_kind_release():
    workflow = load(ROOT / ".github/workflows/e2e.yml")
    job = workflow["jobs"]["kind"]
    matrix = {entry["k8s"]: entry for entry in job["strategy"]["matrix"]["include"]}
    assert set(matrix) == {"1.28", "1.35", "1.37"}
    assert matrix["1.37"]["kind"] == "v0.33.0"
    assert matrix["1.35"]["kind"] == "v0.33.0"
    assert matrix["1.28"]["kind"] == "v0.25.0"
    assert matrix["1.37"]["kubectl"] == "v1.37.0"
    assert matrix["1.35"]["kubectl"] == "v1.35.8"
    assert matrix["1.28"]["kubectl"] == "v1.28.15"
    for entry in matrix.values():
        assert re.fullmatch(r"[0-9a-f]{64}", entry["kind_sha256"])
        assert re.fullmatch(r"[0-9a-f]{64}", entry["kubectl_sha256"])
    # The same kind releases the cluster configs and the demo script ask for.
    script = (ROOT / "scripts/kind-demo.sh").read_text()
    assert "kind_min=0.33.0" in script and "kind_min=0.25.0" in script
    assert job["env"]["K8S"] == "${{ matrix.k8s }}"
    assert job["env"]["DEMO"] == "kind"


def test_e2e_runs_both_demos_and_checks_them_independently():
    workflow = load(ROOT / ".github/workflows/e2e.yml")
    runs = [step.get("run", "") for step in steps(workflow)]
    demo = runs.index("make demo")
    legacy = runs.index("make demo-legacy")
    after_demo = runs[demo + 1]
    assert "--for=condition=complete job/native-sidecar-job" in after_demo
    # The demo leaves the current kubectl context as it found it (scripts/kind-demo.sh).
    assert 'test "$(kubectl config current-context)" = elsewhere' in after_demo
    assert "kubectl config use-context elsewhere" in runs[demo - 1]
    assert 'test "$app" = 0' in after_demo and 'test "$sidecar" = 0' in after_demo
    assert "grep -qx 'main application'" in after_demo
    # The app's exact line for the sidecar's reply (tests/test_local.py sees the same line).
    assert "grep -qx 'sidecar replied: Sidecar application'" in after_demo
    assert 'test "$reason" = DeadlineExceeded' in runs[legacy + 1]


def test_ci_runs_the_pid_1_tests_as_root():
    # GitHub sets CI=true, where a PID 1 test that cannot run fails: so they are kept out of the
    # plain `cargo test` and run by a cargo under sudo. Not through a sudo test runner: testkit
    # starts the binaries through cargo's runner, which would make sudo PID 1 instead.
    rust = {step.get("name"): step for step in load(ROOT / ".github/workflows/ci.yml")["jobs"]["rust"]["steps"]}
    assert rust["cargo test"]["run"].endswith("-- --skip as_pid_1")
    as_root = rust["cargo test, the PID 1 tests as root"]
    assert as_root["run"].startswith("sudo ") and as_root["run"].endswith("cargo test --workspace --locked -- as_pid_1")
    assert "RUNNER" not in (ROOT / ".github/workflows/ci.yml").read_text().replace("RUNNER_TEMP", "")


def test_mutants_run_weekly_with_a_pinned_cargo_mutants_and_not_in_ci_run():
    ci = load(ROOT / ".github/workflows/ci.yml")
    assert ci[True]["schedule"], "ci.yml has no weekly run"
    job = ci["jobs"]["mutants"]
    assert job["if"] == "github.event_name == 'schedule' || github.event_name == 'workflow_dispatch'"
    assert re.fullmatch(r"\d+\.\d+\.\d+", job["env"]["CARGO_MUTANTS_VERSION"])
    runs = [step.get("run", "") for step in job["steps"]]
    assert 'cargo install --locked "cargo-mutants@$CARGO_MUTANTS_VERSION"' in runs
    assert any(run.endswith("make mutants") for run in runs)
    assert "mutants" not in (ROOT / ".ci/run").read_text()
