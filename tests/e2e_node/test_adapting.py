"""docs/adapting.md's examples on the real node, each applied to job.yaml and run through
`make demo`'s run and verdict: the startupProbe, whose 200 the sidecar logs at debug level (the run
sets RUST_LOG=debug) before the app's first line; the hook whose `wait-ready` comes from an image
volume; and the log shipper, an OpenTelemetry Collector that must ship every line the app wrote."""

from __future__ import annotations

import json
import subprocess

import pytest
import yaml

from e2e_support import (KIND_DEMO, REPORT, ROOT, Run, all_of, condition, container_env, container_id, containerd_lines,
                         exited, kubelet_lines, log_lines, ms, run_job, since, stopped, variant)


@pytest.fixture(scope="module")
def startup_probe(node, tmp_path_factory) -> Run:
    tmp_path = tmp_path_factory.mktemp("startup-probe")
    patch = yaml.safe_load((ROOT / "examples" / "startup-probe.yaml").read_text())
    manifest = variant(node, tmp_path, "adapt-startup-probe", patch, container_env("sidecar", RUST_LOG="debug"))
    return run_job(node, tmp_path, "native", manifest)


def test_the_startup_probe_example_completes_with_both_exit_codes_0(startup_probe):
    assert startup_probe.exit_code == 0, startup_probe.stdout + startup_probe.stderr
    assert startup_probe.stdout.splitlines()[-1].startswith("PASS: job Complete"), startup_probe.stdout
    for name in ("sidecar", "app"):
        assert startup_probe.status(name)["state"]["terminated"]["exitCode"] == 0, name


def test_the_startup_probe_is_answered_200_before_the_app_starts(startup_probe, node):
    pod = startup_probe.of_kind("Pod")["metadata"]["name"]
    answered = []
    for at, text in log_lines(node, pod, "sidecar"):
        fields = json.loads(text).get("fields", {})
        if fields.get("message") == "request" and fields.get("path") == "/readyz" and fields.get("status") == 200:
            answered.append(at)
    assert answered, "the sidecar never answered the probe"
    app_first = log_lines(node, pod, "app")[0][0]
    assert answered[0] < app_first
    complete = condition(startup_probe.of_kind("Job"), "Complete")["lastTransitionTime"]
    created = startup_probe.of_kind("Pod")["metadata"]["creationTimestamp"]
    REPORT.append(f"examples/startup-probe.yaml: the probe's first 200 {(app_first - answered[0]).total_seconds():.3f}s "
                  f"before the app's first line; Complete {since(created, complete):.0f}s after the Pod was made")


@pytest.fixture(scope="module")
def wait_ready_volume(node, tmp_path_factory) -> Run:
    tmp_path = tmp_path_factory.mktemp("wait-ready-volume")
    patch = yaml.safe_load((ROOT / "examples" / "wait-ready-volume.yaml").read_text())
    return run_job(node, tmp_path, "native", variant(node, tmp_path, "adapt-wait-ready-volume", patch))


def test_the_hook_runs_wait_ready_from_an_image_volume_and_the_job_completes(wait_ready_volume):
    # The hook's binary exists only in the image volume: without the mount the hook fails, the
    # kubelet kills the sidecar, and the app never starts.
    run = wait_ready_volume
    assert run.exit_code == 0, run.stdout + run.stderr
    assert run.stdout.splitlines()[-1].startswith("PASS: job Complete"), run.stdout
    for name in ("sidecar", "app"):
        assert run.status(name)["state"]["terminated"]["exitCode"] == 0, name
    assert run.status("sidecar")["restartCount"] == 0
    assert not [event for event in run.events if event["reason"] == "FailedPostStartHook"]
    complete = condition(run.of_kind("Job"), "Complete")["lastTransitionTime"]
    REPORT.append(f"examples/wait-ready-volume.yaml: Complete {since(run.of_kind('Pod')['metadata']['creationTimestamp'], complete):.0f}s "
                  f"after the Pod was made, the hook's wait-ready taken from the image volume")


@pytest.fixture(scope="module")
def log_shipper(node, tmp_path_factory) -> Run:
    """examples/log-shipper.yaml with the shipper's image swapped for e2e/otelcol/build.sh's: the
    contrib image it names cannot be pulled here, so the same collector components are built
    here and loaded as `make kind-load` loads images."""
    tmp_path = tmp_path_factory.mktemp("log-shipper")
    built = subprocess.run([ROOT / "e2e" / "otelcol" / "build.sh"], capture_output=True, text=True, timeout=1800)
    assert built.returncode == 0, built.stderr
    image = built.stdout.strip()
    archived = subprocess.run([KIND_DEMO, "archives", tmp_path / "images", image], env=node.env,
                              capture_output=True, text=True, timeout=300)
    assert archived.returncode == 0, archived.stderr
    archive = max((tmp_path / "images").glob("*.tar"), key=lambda path: int(path.stem))
    node.ctr("images", "import", "--digests", "--snapshotter=overlayfs", str(archive))
    patch = yaml.safe_load((ROOT / "examples" / "log-shipper.yaml").read_text())
    swap = {"spec": {"template": {"spec": {"initContainers": [{"name": "log-shipper", "image": image}]}}}}
    return run_job(node, tmp_path, "native", variant(node, tmp_path, "adapt-log-shipper", patch, swap))


def test_the_log_shipper_example_completes_with_every_exit_code_0(log_shipper):
    run = log_shipper
    assert run.exit_code == 0, run.stdout + run.stderr
    assert run.stdout.splitlines()[-1].startswith("PASS: job Complete"), run.stdout
    for name in ("sidecar", "log-shipper", "app"):
        status = run.status(name)
        assert status["state"]["terminated"]["exitCode"] == 0, status
        assert status["restartCount"] == 0, status


def test_every_line_the_app_wrote_is_shipped_before_the_shipper_is_stopped(log_shipper, node):
    # The app's lines go to the file only: its own log has none of them.
    pod = log_shipper.of_kind("Pod")
    app_log = [text for _, text in log_lines(node, pod["metadata"]["name"], "app")]
    assert "main application" not in app_log, app_log
    lines = log_lines(node, pod["metadata"]["name"], "log-shipper")
    signalled = all_of(lines, "Received signal from OS")
    assert len(signalled) == 1, [text for _, text in lines]
    # The debug exporter prints each record's body as `Body: Str(...)`.
    shipped = {line: all_of(lines, f"Body: Str({line})") for line in ("sidecar replied: Sidecar application", "main application")}
    for line, at in shipped.items():
        assert at, f"{line!r} was never shipped: {[text for _, text in lines]}"
        assert at[0] < signalled[0], f"{line!r} shipped after SIGTERM"
    # The kubelet runs the shipper's preStop hook when it stops the shipper at the end of the
    # Job, and sends SIGTERM once the hook's second is over (e2e/node.sh logs the hooks).
    hook = [(at, text) for at, text in kubelet_lines(node) if 'containerName="log-shipper"' in text]
    began, ended = all_of(hook, '"Running preStop hook"'), all_of(hook, '"PreStop hook completed"')
    assert len(began) == len(ended) == 1, [text for _, text in hook]
    lines_of_containerd = containerd_lines(node)
    app_exit, _ = exited(lines_of_containerd, container_id(pod, "app"))
    sigterm = stopped(lines_of_containerd, container_id(pod, "log-shipper"))
    assert app_exit < began[0] and (ended[0] - began[0]).total_seconds() >= 1 and ended[0] <= sigterm, \
        (app_exit, began, ended, sigterm)
    last = shipped["main application"][0]
    REPORT.append(f"examples/log-shipper.yaml: the preStop hook began {ms(began[0] - app_exit)} after the app's exit "
                  f"and took {ms(ended[0] - began[0])}; SIGTERM {ms(sigterm - app_exit)} after the app's exit; "
                  f"the app's last line shipped {ms(signalled[0] - last)} before the collector saw SIGTERM")
