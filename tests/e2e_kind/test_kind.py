"""The users' own commands on a kind cluster made from cluster.yaml: `make kind-load`, `kubectl
apply -f job.yaml` and `kubectl get job -w`, `make demo DEMO=kind`, `make demo-legacy`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from images_support import Followed, wait_for
from kind_support import CLUSTER, CONTEXT, REPORT, ROOT, Cluster

JOB = yaml.safe_load((ROOT / "job.yaml").read_text())
SPEC = JOB["spec"]["template"]["spec"]
IMAGES = {container["image"] for container in SPEC["initContainers"] + SPEC["containers"]}


def images_on(cluster: Cluster, node: str) -> set[str]:
    """The images in the node's containerd, as the kubelet sees them (crictl, on the node)."""
    result = cluster.run("podman", "exec", node, "crictl", "images", "-o", "json")
    assert result.returncode == 0, result.stderr
    return {tag for image in json.loads(result.stdout)["images"] for tag in image["repoTags"] or []}


@pytest.fixture(scope="module")
def loaded(cluster):
    missing = {node: IMAGES - images_on(cluster, node) for node in cluster.nodes()}
    # A new cluster has neither image: what the nodes hold afterwards is the load's doing.
    assert all(gone == IMAGES for gone in missing.values()), missing
    for target in ("images", "kind-load"):
        result = cluster.make(target)
        assert result.returncode == 0, f"make {target}:\n{result.stderr}"
    return cluster


def test_a_pull_goes_nowhere(cluster):
    # The node image sends every pull to 127.0.0.1:1: CoreDNS, which it lacks, shows it. So what
    # the Job runs can only be what make kind-load loaded.
    def refused():
        events = json.loads(cluster.kubectl("get", "events", "-n", "kube-system", "-o", "json"))["items"]
        return [e["message"] for e in events if e["reason"] == "Failed" and "127.0.0.1:1" in e["message"]]
    wait_for("a pull refused at 127.0.0.1:1", refused, 180, interval=1)


def test_make_kind_load_puts_both_images_on_every_node(loaded):
    for node in loaded.nodes():
        assert IMAGES <= images_on(loaded, node), node


def watch_job(cluster: Cluster, name: str, seconds: float) -> list[dict[str, str]]:
    """`kubectl get job NAME -w`'s rows, by column, until the Job has ended: its STATUS column says
    Complete or Failed, or, from an API server older than that column (1.28's), COMPLETIONS is 1/1."""
    watch = Followed(subprocess.Popen(["kubectl", "--context", CONTEXT, "get", "job", name, "-w"],
                                      env=cluster.env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True))

    def ended() -> list[dict[str, str]] | None:
        header, *lines = watch.chunks[:] or [""]
        rows = [dict(zip(header.split(), line.split())) for line in lines]
        if rows and (rows[-1]["STATUS"] in ("Complete", "Failed") if "STATUS" in rows[-1]
                     else rows[-1]["COMPLETIONS"] == "1/1"):
            return rows
        assert watch.process.poll() is None, f"kubectl get -w ended: {watch.chunks}"
        return None

    try:
        rows = wait_for(f"job/{name} to end, in kubectl get -w", ended, seconds, interval=0.2)
    except AssertionError as timeout:
        raise AssertionError(f"{timeout}: {watch.chunks}") from None
    finally:
        output = watch.stop()
    REPORT.append("kubectl get job -w:\n" + output.rstrip())
    return rows


def test_job_yaml_completes_on_a_worker_with_the_loaded_images(loaded):
    name = JOB["metadata"]["name"]
    loaded.kubectl("delete", "job", name, "--ignore-not-found", "--cascade=foreground", "--wait=true")
    loaded.kubectl("apply", "-f", str(ROOT / "job.yaml"))
    last = watch_job(loaded, name, 180)[-1]
    assert (last["COMPLETIONS"], last.get("STATUS", "Complete")) == ("1/1", "Complete"), last

    pod = json.loads(loaded.kubectl("get", "pods", "-l", f"job-name={name}", "-o", "json"))["items"]
    assert len(pod) == 1, pod
    pod = pod[0]
    assert "worker" in pod["spec"]["nodeName"], pod["spec"]["nodeName"]
    states = {s["name"]: s for s in pod["status"]["initContainerStatuses"] + pod["status"]["containerStatuses"]}
    assert {n: (s["state"]["terminated"]["exitCode"], s["restartCount"]) for n, s in states.items()} == \
        {"sidecar": (0, 0), "app": (0, 0)}
    events = json.loads(loaded.kubectl("get", "events", "--field-selector", f"involvedObject.name={pod['metadata']['name']}",
                                       "-o", "json"))["items"]
    pulled = [e["message"] for e in events if e["reason"] == "Pulled"]
    assert len(pulled) == 2 and all("already present on machine" in message for message in pulled), pulled
    assert not [e for e in events if e["reason"] == "Pulling"]
    REPORT.append(f"job.yaml ran on {pod['spec']['nodeName']}")


def test_make_demo_passes_on_kind(loaded, tmp_path):
    # With E2E_RECORD=DIR, the Job and Pod the run recorded are kept as DIR/kind-native-MINOR.json
    # (tests/fixtures/ comes from there).
    recorded = tmp_path / "run.json"
    result = loaded.make("demo", "DEMO=kind", RUN_JSON=str(recorded))
    if os.environ.get("E2E_RECORD") and recorded.exists():
        shutil.copy(recorded, Path(os.environ["E2E_RECORD"]) / f"kind-native-{loaded.env['K8S']}.json")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"kind-demo: cluster {CLUSTER} is already up (v{loaded.env['K8S']}." in result.stderr
    assert "\nPASS: job Complete; app and sidecar both exited 0" in result.stdout, result.stdout
    REPORT.append("make demo DEMO=kind, its last lines:\n" + result.stdout[result.stdout.rindex("job.batch/"):].strip())


def test_make_demo_legacy_runs_into_its_deadline_on_kind(loaded):
    result = loaded.make("demo-legacy")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "\nPASS: app exited 0, yet the job Failed with DeadlineExceeded" in result.stdout, result.stdout
