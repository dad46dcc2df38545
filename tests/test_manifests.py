"""The kind cluster configs and the two Jobs: schema-valid on every Kubernetes release from
1.28 to 1.37, and built the way job.yaml's comments say they are."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from images_support import images_env

ROOT = Path(__file__).resolve().parent.parent
JOBS = ["job.yaml", "job-legacy.yaml"]
# Every minor release the Jobs must run on, as kubernetes-validate names its schemas.
VERSIONS = [f"1.{minor}.0" for minor in range(28, 38)]

NODE_1_37 = (
    "kindest/node:v1.37.0@sha256:a1ed56cfb0e7b93589bdf97c8cd566405a265939e3620fc4f5de89adff580ae5"
)
NODE_1_28 = (
    "kindest/node:v1.28.15@sha256:a7c05c7ae043a0b8c818f5a06188bc2c4098f6cb59ca7d1856df00375d839251"
)
NODE_1_35 = (
    "kindest/node:v1.35.8@sha256:07b2536e30b803ed61d1677a79df6115f798ce64c80f9e22f6ed45afd09323c0"
)


def load(name):
    return yaml.safe_load((ROOT / name).read_text())


def validator():
    exe = Path(sys.executable).with_name("kubernetes-validate")
    found = str(exe) if exe.exists() else shutil.which("kubernetes-validate")
    assert found, "kubernetes-validate is not installed: pip install -r tests/requirements.txt"
    return found


def validate(name, version):
    return subprocess.run(
        [validator(), "--strict", "--quiet", "-k", version, str(ROOT / name)],
        capture_output=True,
        text=True,
        check=False,
    )


def duration_seconds(text):
    """Seconds in a duration as the binaries accept it (humantime: 500ms, 5s, 2m, 1h)."""
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    match = re.fullmatch(r"(\d+)(ms|s|m|h)", text)
    assert match, f"not a simple duration: {text!r}"
    return int(match[1]) * units[match[2]]


def pod_spec(job):
    return job["spec"]["template"]["spec"]


def all_containers(job):
    spec = pod_spec(job)
    return spec.get("initContainers", []) + spec["containers"]


def container(job, name):
    (found,) = [c for c in all_containers(job) if c["name"] == name]
    return found


def env(c):
    return {e["name"]: e["value"] for e in c.get("env", [])}


# --- schema ------------------------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("name", JOBS)
def test_job_is_valid_on_every_supported_release(name, version):
    result = validate(name, version)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == ""


def test_strict_validation_bites():
    # 1.27 has no initContainers[].restartPolicy: if this passed, the checks above would
    # prove nothing about unknown fields.
    result = validate("job.yaml", "1.27.0")
    assert result.returncode != 0
    assert "'restartPolicy' was unexpected" in result.stdout


# --- kind cluster configs ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "image", "kind_release"),
    [
        ("cluster.yaml", NODE_1_37, "v0.33.0"),
        ("cluster-1.35.yaml", NODE_1_35, "v0.33.0"),
        ("cluster-1.28.yaml", NODE_1_28, "v0.25.0"),
    ],
)
def test_cluster_is_one_node_pinned_by_digest(name, image, kind_release):
    config = load(name)
    assert config["kind"] == "Cluster"
    assert config["apiVersion"] == "kind.x-k8s.io/v1alpha4"
    assert config["nodes"] == [{"role": "control-plane", "image": image}]
    # The comment names the kind release that published the image.
    assert f"kind {kind_release}" in (ROOT / name).read_text()


def test_gate_is_set_on_1_28_only():
    assert load("cluster-1.28.yaml")["featureGates"] == {"SidecarContainers": True}
    # The gate no longer exists on 1.37: naming it at all would stop the control plane. On 1.35
    # it is locked on, so there is nothing to set.
    for name in ("cluster.yaml", "cluster-1.35.yaml"):
        assert "featureGates" not in load(name)
        code = [
            line
            for line in (ROOT / name).read_text().splitlines()
            if not line.lstrip().startswith("#")
        ]
        assert not [line for line in code if "SidecarContainers" in line]


# --- job.yaml ------------------------------------------------------------------------------


def test_sidecar_is_a_native_sidecar():
    job = load("job.yaml")
    assert job["apiVersion"] == "batch/v1" and job["kind"] == "Job"
    spec = pod_spec(job)
    assert [c["name"] for c in spec["initContainers"]] == ["sidecar"]
    assert [c["name"] for c in spec["containers"]] == ["app"]
    assert spec["initContainers"][0]["restartPolicy"] == "Always"
    assert spec["restartPolicy"] == "Never"


def test_app_waits_for_the_sidecar_through_post_start_not_a_startup_probe():
    job = load("job.yaml")
    sidecar = container(job, "sidecar")
    # kubernetes#132826: a sidecar startupProbe can strand the app on restartPolicy Never.
    assert "startupProbe" not in sidecar
    command = sidecar["lifecycle"]["postStart"]["exec"]["command"]
    assert command[:2] == ["/sidecar", "wait-ready"]
    args = dict(zip(command[2::2], command[3::2]))
    assert set(args) == {"--url", "--timeout"}
    assert args["--url"] == f"http://{env(sidecar)['SIDECAR_LISTEN']}/readyz"
    # The hook must give up before the Job's deadline does.
    assert duration_seconds(args["--timeout"]) < job["spec"]["activeDeadlineSeconds"]


@pytest.mark.parametrize("name", JOBS)
def test_sidecar_listens_on_loopback_only(name):
    sidecar = container(load(name), "sidecar")
    # Nothing outside the Pod can connect; --listen's own default (0.0.0.0:8080) stays as the
    # README documents it, and job.yaml overrides it.
    assert env(sidecar)["SIDECAR_LISTEN"] == "127.0.0.1:8080"
    # A declared port would say otherwise; Kubernetes does not need one to run the container.
    assert "ports" not in sidecar


@pytest.mark.parametrize(("probe", "path"), [("readinessProbe", "/readyz"),
                                             ("livenessProbe", "/healthz")])
def test_sidecar_probes_run_its_own_check_inside_the_container(probe, path):
    sidecar = container(load("job.yaml"), "sidecar")
    spec = sidecar[probe]
    # An httpGet probe comes from the kubelet to the Pod IP, where nothing listens.
    assert set(spec) == {"exec", "timeoutSeconds", "periodSeconds", "failureThreshold"}
    command = spec["exec"]["command"]
    assert command[:2] == ["/sidecar", "wait-ready"]
    args = dict(zip(command[2::2], command[3::2]))
    assert set(args) == {"--url", "--timeout"}
    assert args["--url"] == f"http://{env(sidecar)['SIDECAR_LISTEN']}{path}"
    # The check gives up before the kubelet does, so its verdict and its error line count.
    assert duration_seconds(args["--timeout"]) < spec["timeoutSeconds"]
    assert spec["timeoutSeconds"] <= spec["periodSeconds"]


def test_liveness_outlasts_the_header_read_timeout():
    # At the connection cap a probe waits like any client; slow clients are cut off after
    # the header-read timeout (10s by default), before the liveness probe gives up.
    sidecar = container(load("job.yaml"), "sidecar")
    header_read_timeout = duration_seconds(env(sidecar).get("SIDECAR_HEADER_READ_TIMEOUT", "10s"))
    live = sidecar["livenessProbe"]
    assert live["periodSeconds"] * live["failureThreshold"] > header_read_timeout


def mebibytes(quantity):
    match = re.fullmatch(r"(\d+)Mi", quantity)
    assert match, f"not a quantity in Mi: {quantity!r}"
    return int(match[1])


# Measured on the musl release binary (README: Limits): the most one connection costs (a
# request head just under 16 KiB held unfinished), and the sidecar's memory at start.
CONNECTION_KIB = 33
START_MIB = 1.1


@pytest.mark.parametrize("name", JOBS)
def test_connection_cap_fits_well_inside_the_memory_limit(name):
    sidecar = container(load(name), "sidecar")
    cap = int(env(sidecar)["SIDECAR_MAX_CONNECTIONS"])
    worst_mib = START_MIB + cap * CONNECTION_KIB / 1024
    limit = mebibytes(sidecar["resources"]["limits"]["memory"])
    assert worst_mib < limit / 3, f"{cap} connections: {worst_mib:.1f} MiB of {limit} MiB"


def test_app_reaches_the_sidecar_over_loopback():
    job = load("job.yaml")
    listen = env(container(job, "sidecar"))["SIDECAR_LISTEN"]
    app_env = env(container(job, "app"))
    assert app_env["APP_SIDECAR_URL"] == f"http://{listen}/"
    assert duration_seconds(app_env["APP_SIDECAR_WAIT"]) > 0


@pytest.mark.parametrize("name", JOBS)
def test_grace_period_outlasts_the_sidecar_drain(name):
    job = load(name)
    sidecar = container(job, "sidecar")
    # The binary reads --shutdown-timeout or SIDECAR_SHUTDOWN_TIMEOUT; neither may hide in args.
    assert not any("shutdown-timeout" in a for a in sidecar.get("args", []))
    drain = duration_seconds(env(sidecar)["SIDECAR_SHUTDOWN_TIMEOUT"])
    assert pod_spec(job)["terminationGracePeriodSeconds"] > drain


@pytest.mark.parametrize("name", JOBS)
def test_pod_security_standard_restricted(name):
    job = load(name)
    spec = pod_spec(job)
    assert spec["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": 65532,
        "runAsGroup": 65532,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert spec["automountServiceAccountToken"] is False
    for field in ("hostNetwork", "hostPID", "hostIPC", "volumes"):
        assert field not in spec
    for c in all_containers(job):
        assert c["securityContext"] == {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        }, c["name"]


@pytest.mark.parametrize("name", JOBS)
def test_small_requests_and_limits_on_every_container(name):
    for c in all_containers(load(name)):
        resources = c["resources"]
        assert set(resources) == {"requests", "limits"}, c["name"]
        for kind in ("requests", "limits"):
            assert set(resources[kind]) == {"cpu", "memory"}, c["name"]
        assert resources["requests"] == {"cpu": "10m", "memory": "16Mi"}
        assert resources["limits"] == {"cpu": "100m", "memory": "32Mi"}


@pytest.mark.parametrize("name", JOBS)
def test_images_are_the_built_ones(name):
    names = images_env()
    job = load(name)
    assert container(job, "app")["image"] == names["APP_IMAGE"]
    assert container(job, "sidecar")["image"] == names["SIDECAR_IMAGE"]
    for c in all_containers(job):
        assert c["imagePullPolicy"] == "IfNotPresent"
        assert c["image"].endswith(":" + names["VERSION"])


@pytest.mark.parametrize("name", JOBS)
def test_job_bounds_and_cleanup(name):
    job = load(name)
    spec = job["spec"]
    assert spec["backoffLimit"] == 0
    assert spec["ttlSecondsAfterFinished"] > 0
    work = duration_seconds(env(container(job, "app"))["APP_SLEEP"])
    # Room for the work itself, so the deadline can only catch a Job that never ends.
    assert spec["activeDeadlineSeconds"] > work


@pytest.mark.parametrize("name", JOBS)
def test_recommended_labels(name):
    job = load(name)
    job_name = job["metadata"]["name"]
    expected = {
        "app.kubernetes.io/name": job_name,
        "app.kubernetes.io/instance": job_name,
        "app.kubernetes.io/version": images_env()["VERSION"],
        "app.kubernetes.io/component": "batch",
        "app.kubernetes.io/part-of": "native-sidecar-job",
    }
    assert job["metadata"]["labels"] == expected
    assert job["spec"]["template"]["metadata"]["labels"] == expected


# --- job-legacy.yaml -----------------------------------------------------------------------


def test_legacy_runs_the_same_sidecar_as_a_regular_container():
    native, legacy = load("job.yaml"), load("job-legacy.yaml")
    assert "initContainers" not in pod_spec(legacy)
    assert [c["name"] for c in pod_spec(legacy)["containers"]] == ["app", "sidecar"]
    # Everything but what makes it native: restartPolicy, the postStart gate, and a liveness
    # probe that could only kill it for good under restartPolicy Never.
    expected = {
        key: value
        for key, value in container(native, "sidecar").items()
        if key not in ("restartPolicy", "lifecycle", "livenessProbe")
    }
    assert container(legacy, "sidecar") == expected
    assert container(legacy, "app") == container(native, "app")


def test_legacy_ends_in_its_deadline():
    legacy = load("job-legacy.yaml")
    native = load("job.yaml")
    assert legacy["metadata"]["name"] != native["metadata"]["name"]
    # The app's work ends well before the deadline, so only the sidecar can hold the Job open.
    work = duration_seconds(env(container(legacy, "app"))["APP_SLEEP"])
    assert work < legacy["spec"]["activeDeadlineSeconds"] < native["spec"]["activeDeadlineSeconds"]


# --- networkpolicy.yaml --------------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
def test_network_policy_is_valid_on_every_supported_release(version):
    result = validate("networkpolicy.yaml", version)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == ""


def test_network_policy_denies_all_ingress_to_the_jobs_pod():
    policy = load("networkpolicy.yaml")
    assert (policy["apiVersion"], policy["kind"]) == ("networking.k8s.io/v1", "NetworkPolicy")
    spec = policy["spec"]
    # Ingress is listed with no rule: nothing is allowed in. Egress is not restricted.
    assert spec["policyTypes"] == ["Ingress"]
    assert "ingress" not in spec
    selector = spec["podSelector"]
    assert set(selector) == {"matchLabels"}
    assert selector["matchLabels"], "an empty selector would select every Pod in the namespace"
    pod_labels = load("job.yaml")["spec"]["template"]["metadata"]["labels"]
    assert selector["matchLabels"].items() <= pod_labels.items()
    assert policy["metadata"]["labels"] == load("job.yaml")["metadata"]["labels"]
