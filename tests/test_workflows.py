"""The GitHub workflows: schema-valid, clean under zizmor, and pinned the way they claim.
They cannot run here. Where a step's script can run without GitHub, it runs, against stand-ins,
and must tell a good run from a bad one; the rest is what can be read from the files."""

import json
import os
import re
import shlex
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
        # e2e-matrix builds a release cold, then runs its node: the one job allowed an hour.
        assert job["timeout-minutes"] <= (60 if name == "e2e-matrix" else 30), name
    for step in steps(workflow):
        if step.get("uses", "").startswith("actions/checkout@"):
            assert step["with"]["persist-credentials"] is False


@pytest.mark.parametrize("path", WORKFLOWS, ids=NAMES)
def test_no_expressions_inside_run_scripts(path):
    # Values reach scripts through env:, never pasted into the script text.
    for step in steps(load(path)):
        assert "${{" not in step.get("run", ""), step.get("name")


def infra_pytest_args():
    (step,) = [step for step in load(ROOT / ".github/workflows/ci.yml")["jobs"]["infra"]["steps"]
               if "pytest" in step.get("run", "")]
    words = shlex.split(step["run"])
    return words[words.index("pytest") + 1:]


def test_the_infra_job_collects_no_test_that_needs_podman_or_wrk():
    # That job has neither: the step's own arguments, given to pytest here, must leave out every
    # test file that uses them, and nothing else.
    args = [a for a in infra_pytest_args() if a not in ("-ra", "-rs")]
    collected = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", *args], cwd=ROOT,
        capture_output=True, text=True, check=True, timeout=300).stdout
    files = {line.split("::", 1)[0] for line in collected.splitlines() if "::" in line}
    needs = {p.relative_to(ROOT).as_posix() for p in (ROOT / "tests").glob("test_*.py")
             if re.search(r"\bpodman_env\b|\bbuilder_env\b|test_images\.podman\b|which\(\"wrk\"\)",
                          p.read_text())}
    assert needs and not files & needs, sorted(files & needs)
    everything = {p.relative_to(ROOT).as_posix() for p in (ROOT / "tests").glob("test_*.py")}
    assert everything - needs <= files, sorted(everything - needs - files)


def run_step(script, answers, tmp_path, env=None):
    """Runs a step's script with bash -e, as GitHub does, against a stand-in kubectl whose answer
    to each call is the first `answers` entry whose key is in its arguments."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    cases = "".join(f"  *{shlex.quote(key)}*) printf '%s' {shlex.quote(out)}; exit {code} ;;\n"
                    for key, (out, code) in answers.items())
    (bin_dir / "kubectl").write_text(f'#!/bin/sh\ncase "$*" in\n{cases}  *) exit 0 ;;\nesac\n')
    (bin_dir / "kubectl").chmod(0o755)
    return subprocess.run(["bash", "-e", "-c", script], cwd=tmp_path, capture_output=True,
                          text=True, timeout=30,
                          env={**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}",
                               "KIND_CLUSTER": "native-sidecar", **(env or {})})


def e2e_step(after):
    runs = [step.get("run", "") for step in steps(load(ROOT / ".github/workflows/e2e.yml"))]
    return runs[runs.index(after) + 1]


GOOD_RUN = {
    "current-context": ("elsewhere", 0),
    "wait": ("", 0),
    "get pods": ("pod/native-sidecar-job-abcde", 0),
    'name=="app"': ("0", 0),
    'name=="sidecar"': ("0", 0),
    "logs": ("sidecar replied: Sidecar application\nmain application\n", 0),
}


@pytest.mark.parametrize(("change", "passes"), [
    ({}, True),
    ({"current-context": ("kind-native-sidecar", 0)}, False),  # the demo took the context
    ({"wait": ("", 1)}, False),                                # the Job did not complete
    ({'name=="sidecar"': ("143", 0)}, False),
    ({'name=="app"': ("1", 0)}, False),
    ({"logs": ("main application\n", 0)}, False),              # never reached the sidecar
    ({"logs": ("sidecar replied: Sidecar application\n", 0)}, False),
])
def test_e2e_checks_the_native_job_again_with_kubectl(tmp_path, change, passes):
    proc = run_step(e2e_step("make demo"), {**GOOD_RUN, **change}, tmp_path)
    assert (proc.returncode == 0) == passes, proc.stdout + proc.stderr


@pytest.mark.parametrize(("reason", "passes"), [("DeadlineExceeded", True),
                                                ("BackoffLimitExceeded", False), ("", False)])
def test_e2e_checks_the_legacy_job_failed_by_its_deadline(tmp_path, reason, passes):
    proc = run_step(e2e_step("make demo-legacy"), {"legacy-sidecar-job": (reason, 0)}, tmp_path)
    assert (proc.returncode == 0) == passes, proc.stdout + proc.stderr


def test_e2e_matrix_pairs_each_node_image_with_its_kind_release():
    # The pairs come from the cluster configs and the demo's own table; the matrix must agree.
    workflow = load(ROOT / ".github/workflows/e2e.yml")
    job = workflow["jobs"]["kind"]
    matrix = {entry["k8s"]: entry for entry in job["strategy"]["matrix"]["include"]}
    script = (ROOT / "scripts/kind-demo.sh").read_text()
    demo = {k8s: (config, kind) for k8s, config, kind in re.findall(
        r"^\s+(1\.\d+)\) config=(\S+) kind_min=(\S+) ;;$", script, re.M)}
    oldest_kubectl = int(re.search(r"^\s+need kubectl v1\.(\d+)\.0 ", script, re.M)[1])
    assert set(matrix) == set(demo)
    for k8s, (config, kind_min) in demo.items():
        node = yaml.safe_load((ROOT / config).read_text())["nodes"][0]["image"]
        version = re.search(r"node:(v[\d.]+)@", node)[1]
        assert matrix[k8s]["kind"] == f"v{kind_min}", k8s
        # kubectl from the node's own release, or the oldest the demo takes if that is newer.
        minor = int(version.split(".")[1])
        if minor >= oldest_kubectl:
            assert matrix[k8s]["kubectl"] == version, k8s
        else:
            assert matrix[k8s]["kubectl"].startswith(f"v1.{oldest_kubectl}."), k8s
        assert re.fullmatch(r"[0-9a-f]{64}", matrix[k8s]["kind_sha256"])
        assert re.fullmatch(r"[0-9a-f]{64}", matrix[k8s]["kubectl_sha256"])
    assert job["env"]["K8S"] == "${{ matrix.k8s }}"
    assert job["env"]["DEMO"] == "kind"
    # make e2e-kind builds the kind release that cluster.yaml's node image comes with.
    tier = re.search(r"^\s+sigs\.k8s\.io/kind (v\S+)", (ROOT / "e2e/kind/go.mod").read_text(), re.M)[1]
    assert tier == f"v{demo['1.37'][1]}"


def test_ci_keeps_the_pid_1_tests_out_of_plain_cargo_test_and_runs_them_as_root():
    # GitHub sets CI=true, where a PID 1 test that cannot run fails: so the first step must list
    # none of them and the second, under sudo, all of them. The steps' own cargo arguments, with
    # --list, ask the test binaries which tests each would run.
    rust = {step.get("name"): step.get("run", "")
            for step in load(ROOT / ".github/workflows/ci.yml")["jobs"]["rust"]["steps"]}

    def listed(run):
        words = shlex.split(run)
        words = words[words.index("cargo"):]
        out = subprocess.run([*words, "--list"], cwd=ROOT, capture_output=True, text=True,
                             check=True, timeout=1800).stdout
        return {line.split(": test")[0] for line in out.splitlines() if line.endswith(": test")}

    plain, as_root = listed(rust["cargo test"]), listed(rust["cargo test, the PID 1 tests as root"])
    assert as_root and all("as_pid_1" in name for name in as_root)
    assert not [name for name in plain if "as_pid_1" in name]
    assert plain and not plain & as_root


def test_mutants_run_weekly_with_a_pinned_cargo_mutants_and_not_in_ci_run():
    ci = load(ROOT / ".github/workflows/ci.yml")
    assert ci[True]["schedule"], "ci.yml has no weekly run"
    job = ci["jobs"]["mutants"]
    assert job["if"] == "github.event_name == 'schedule' || github.event_name == 'workflow_dispatch'"
    assert re.fullmatch(r"\d+\.\d+\.\d+", job["env"]["CARGO_MUTANTS_VERSION"])
    assert "mutants" not in (ROOT / ".ci/run").read_text()
