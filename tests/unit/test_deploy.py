"""Deployment artefacts: compose validates, Kubernetes YAML parses and runs real `monitor` commands, the
dashboard and the configuration reference match the code. No services needed (docker-compose parses only)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys

import pytest
import yaml

from monitor.commands.config_reference import render_env_sample, render_markdown, setting_docs
from tests.deploy_checks import (
    COMPOSE_FILE,
    DASHBOARD,
    DEPLOY,
    PENDING_COMMANDS,
    REPO,
    all_commands,
    check_monitor_argv,
    check_python_argv,
    compose,
    dashboard_exprs,
    dashboard_metrics,
    k8s_containers,
    k8s_documents,
    pod_spec,
    secret_references,
    split_shell,
)

SHUTDOWN_GUARANTEE_S = 10  # `monitor run` exits cleanly within 10 s of SIGTERM (issue 3)


# ------------------------------------------------------------------ compose


def test_compose_file_validates_with_docker_compose() -> None:
    exe = shutil.which("docker-compose")
    assert exe, "docker-compose missing: `apt-get install -y docker-compose` (Debian's, parses without an engine)"
    out = subprocess.run([exe, "-f", str(COMPOSE_FILE), "--profile", "observability", "config"], cwd=REPO,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    services = yaml.safe_load(out.stdout)["services"]
    assert {"kafka", "postgres", "init", "consumer-1", "consumer-2", "api", "scheduler", "prometheus",
            "grafana"} <= set(services)


def test_compose_stack_shape() -> None:
    services = compose()["services"]
    assert services["kafka"]["image"].startswith("apache/kafka:")
    assert "broker,controller" in services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"]  # KRaft, no ZooKeeper
    consumers = [s for s in services.values() if s.get("command", [])[:2] == ["monitor", "run"]]
    assert len(consumers) == 2
    groups = {c["environment"]["MONITOR_KAFKA__GROUP_ID"] for c in consumers}
    assert len(groups) == 1, "both consumers must be members of one group"
    init_lines = split_shell(services["init"]["command"][2])
    topics = next(line for line in init_lines if line[:3] == ("monitor", "topics", "create"))
    partitions = int(topics[topics.index("--partitions") + 1])
    assert len(consumers) <= partitions
    assert ("monitor", "db", "upgrade") in init_lines
    for consumer in consumers:
        assert consumer["depends_on"]["init"]["condition"] == "service_completed_successfully"
        grace = int(str(consumer["stop_grace_period"]).rstrip("s"))
        assert SHUTDOWN_GUARANTEE_S < grace <= 60
    for name in ("prometheus", "grafana"):
        assert services[name]["profiles"] == ["observability"]


def test_prometheus_scrapes_what_compose_serves() -> None:
    """Every scrape target is a compose service listening on that port; the API's /metrics gets a read key."""
    services = compose()["services"]
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text(encoding="utf-8"))
    mounts = [v.split(":")[1] for v in services["prometheus"]["volumes"]]
    jobs = 0
    for job in config["scrape_configs"]:
        for target in (t for sc in job["static_configs"] for t in sc["targets"]):
            host, port = target.split(":")
            argv = services[host]["command"]
            flag = "--port" if argv[:2] == ["monitor", "serve"] else "--metrics-port"
            assert flag in argv and argv[argv.index(flag) + 1] == port, f"{job['job_name']}: {host} not on {port}"
            if argv[:2] == ["monitor", "serve"]:
                key_file = job["authorization"]["credentials_file"]
                assert job["authorization"]["type"] == "Bearer"
                assert any(key_file.startswith(m + "/") for m in mounts), f"{key_file} is not mounted"
            jobs += 1
    assert jobs >= 4


def test_compose_mounts_exist() -> None:
    for service in compose()["services"].values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (DEPLOY / source).exists(), f"compose mounts missing {source}"


# ------------------------------------------------------------------ kubernetes


def test_k8s_yaml_parses_and_kustomization_lists_every_file() -> None:
    docs = k8s_documents()
    kinds = {doc["kind"] for _, doc in docs}
    assert {"Deployment", "Service", "CronJob", "Secret", "ConfigMap", "Kustomization"} <= kinds
    kustomization = next(doc for _, doc in docs if doc["kind"] == "Kustomization")
    files = {name for name, _ in docs} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == files


def test_k8s_workloads() -> None:
    docs = {(doc["kind"], doc["metadata"]["name"]): doc for _, doc in k8s_documents() if "metadata" in doc}
    consumer = docs[("Deployment", "monitor-consumer")]
    spec = pod_spec(consumer)
    assert spec is not None
    topics = next(c["command"] for c in spec["initContainers"] if c["command"][:3] == ["monitor", "topics", "create"])
    partitions = int(topics[topics.index("--partitions") + 1])
    assert 1 <= consumer["spec"]["replicas"] <= partitions, "consumers beyond the partition count sit idle"
    assert SHUTDOWN_GUARANTEE_S < spec["terminationGracePeriodSeconds"] <= 120
    assert any(c["command"] == ["monitor", "db", "upgrade"] for c in spec["initContainers"])

    cron = docs[("CronJob", "monitor-retrain")]
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    cron_spec = pod_spec(cron)
    assert cron_spec is not None and cron_spec["containers"][0]["command"][:2] == ["monitor", "retrain"]

    api = docs[("Deployment", "monitor-api")]
    service = docs[("Service", "monitor-api")]
    assert service["spec"]["selector"].items() <= api["spec"]["template"]["metadata"]["labels"].items()


def test_k8s_secrets_hold_the_credentials_and_are_referenced() -> None:
    secrets = {doc["metadata"]["name"]: doc for _, doc in k8s_documents() if doc["kind"] == "Secret"}
    keys = {k for s in secrets.values() for k in s.get("stringData", {})}
    assert {"MONITOR_DB__URL", "MONITOR_KAFKA__SASL_PASSWORD", "MONITOR_API_KEY"} <= keys
    configmaps = {doc["metadata"]["name"] for _, doc in k8s_documents() if doc["kind"] == "ConfigMap"}
    for where, _doc, container in k8s_containers():
        for source in container.get("envFrom", []):
            if "secretRef" in source:
                assert source["secretRef"]["name"] in secrets, where
            if "configMapRef" in source:
                assert source["configMapRef"]["name"] in configmaps, where
        assert "MONITOR_DB__URL" not in {e["name"] for e in container.get("env", [])}, "secrets only via Secrets"
    for name, doc in k8s_documents():
        if doc["kind"] == "ConfigMap":
            assert not any(re.search("PASSWORD|DB__URL|API_KEY", k) for k in doc["data"]), name
    # Every Secret is used by a workload or a monitor, and every reference names a defined Secret.
    refs = secret_references(k8s_documents(recursive=True))
    unused = sorted(set(secrets) - set(refs))
    assert not unused, f"Secrets nothing references (use them or drop them): {unused}"
    undefined = {name: sorted(where) for name, where in refs.items() if name not in secrets}
    assert not undefined, f"references to Secrets deploy/k8s does not define: {undefined}"
    # the documented command to create that key parses (NAME is required)
    comment = (DEPLOY / "k8s" / "secrets.yaml").read_text(encoding="utf-8")
    command = re.search(r"-- (monitor apikey create .*)", comment)
    assert command, "secrets.yaml says how to create the API key"
    assert check_monitor_argv(tuple(command.group(1).split())) is None


def test_secret_references_sees_every_kind_of_reference() -> None:
    pod = {"containers": [{"name": "c", "envFrom": [{"secretRef": {"name": "a"}}, {"configMapRef": {"name": "x"}}],
                           "env": [{"name": "K", "valueFrom": {"secretKeyRef": {"name": "b", "key": "K"}}},
                                   {"name": "L", "value": "plain"}]}],
           "volumes": [{"name": "v", "secret": {"secretName": "c"}},
                       {"name": "p", "projected": {"sources": [{"secret": {"name": "d"}}]}},
                       {"name": "e", "emptyDir": {}}]}
    docs = [("w.yaml", {"kind": "Deployment", "metadata": {"name": "w"}, "spec": {"template": {"spec": pod}}}),
            ("m.yaml", {"kind": "ServiceMonitor", "metadata": {"name": "m"},
                        "spec": {"endpoints": [{"authorization": {"credentials": {"name": "e", "key": "k"}}},
                                               {"bearerTokenSecret": {"name": "f", "key": "k"}}]}}),
            ("s.yaml", {"kind": "Secret", "metadata": {"name": "unused"}})]
    refs = secret_references(docs)
    assert set(refs) == {"a", "b", "c", "d", "e", "f"}
    assert refs["a"] == {"k8s:w.yaml/w"} and refs["f"] == {"k8s:m.yaml/m"}


def test_k8s_api_pods_read_kafka_and_the_model_and_prometheus_sends_a_key() -> None:
    docs = {(doc["kind"], doc["metadata"]["name"]): doc for _, doc in k8s_documents(recursive=True)
            if "metadata" in doc}
    api = docs[("Deployment", "monitor-api")]
    spec = pod_spec(api)
    assert spec is not None
    container = next(c for c in spec["containers"] if c["command"][:2] == ["monitor", "serve"])
    assert {"monitor-db", "monitor-kafka"} <= {s["secretRef"]["name"] for s in container["envFrom"] if "secretRef" in s}
    volumes = {v["name"]: v for v in spec["volumes"]}
    models = next(m for m in container["volumeMounts"] if m["mountPath"] == "/models")
    assert models.get("readOnly") is True
    assert volumes[models["name"]]["persistentVolumeClaim"]["claimName"] == "monitor-models"
    # /metrics wants a key: no annotation-based scraping (it cannot send one), a ServiceMonitor that does
    assert "prometheus.io/scrape" not in api["spec"]["template"]["metadata"].get("annotations", {})
    monitor = docs[("ServiceMonitor", "monitor-api")]
    service = docs[("Service", "monitor-api")]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    endpoint = monitor["spec"]["endpoints"][0]
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]} and endpoint["path"] == "/metrics"
    assert endpoint["authorization"]["credentials"]["name"] == "monitor-api-keys"
    assert endpoint["authorization"]["credentials"]["key"] in docs[("Secret", "monitor-api-keys")]["stringData"]
    optional = yaml.safe_load((DEPLOY / "k8s" / "observability" / "kustomization.yaml").read_text(encoding="utf-8"))
    assert optional["resources"] == ["servicemonitor.yaml"]


def test_k8s_probes_point_at_declared_ports() -> None:
    probes = 0
    for where, _doc, container in k8s_containers():
        ports = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
        for kind in ("readinessProbe", "livenessProbe"):
            probe = container.get(kind)
            if not probe:
                continue
            probes += 1
            port = probe["httpGet"]["port"]
            number = ports[port] if isinstance(port, str) else port
            assert number in ports.values(), f"{where} {kind} on undeclared port {port}"
            argv = container["command"]
            flag = "--metrics-port" if argv[:2] == ["monitor", "run"] else "--port"
            assert int(argv[argv.index(flag) + 1]) == number, f"{where}: {kind} port {number} is not the {flag}"
    assert probes >= 4


# ------------------------------------------------------------------ every command is a real `monitor` command


def test_every_container_command_is_a_real_monitor_command() -> None:
    commands = all_commands()
    seen_pending: set[str] = set()
    monitor_lines = 0
    for command in commands:
        argv = command.argv
        if argv[0] == "monitor":
            monitor_lines += 1
            try:
                if check_monitor_argv(argv) == "pending":
                    seen_pending.add(argv[1])
            except AssertionError as exc:
                raise AssertionError(f"{command.where}: {exc}") from None
        elif argv[0] in ("python", "python3"):
            check_python_argv(argv)
        else:
            raise AssertionError(f"{command.where}: unexpected program {argv[0]!r} in the monitor image: {argv}")
    assert monitor_lines >= 10
    assert seen_pending <= PENDING_COMMANDS
    print(f"pending sub-commands still to be built: {sorted(seen_pending) or 'none'}")


def test_the_command_check_rejects_what_does_not_exist() -> None:
    with pytest.raises(AssertionError, match="no command"):
        check_monitor_argv(("monitor", "no-such-command"))
    with pytest.raises(AssertionError, match="does not parse"):
        check_monitor_argv(("monitor", "run", "--no-such-option"))
    with pytest.raises(AssertionError, match="no command"):
        check_monitor_argv(("monitor", "db", "frobnicate"))
    assert check_monitor_argv(("monitor", "db", "upgrade")) is None
    assert split_shell("monitor db upgrade && monitor topics create --partitions 4; echo done") == [
        ("monitor", "db", "upgrade"), ("monitor", "topics", "create", "--partitions", "4")]


# ------------------------------------------------------------------ dashboard


def test_dashboard_is_valid_grafana_json() -> None:
    dash = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert dash["uid"] and dash["panels"]
    titles = " ".join(p["title"].lower() for p in dash["panels"])
    for topic in ("throughput", "lag", "latency", "alerts opened", "dead letters", "model version", "retraining"):
        assert topic in titles, f"dashboard lacks a {topic} panel"
    assert all(p.get("targets") for p in dash["panels"])
    assert {"monitor_windows_consumed_total", "monitor_consumer_lag", "monitor_batch_seconds_bucket",
            "monitor_alerts_opened_total", "monitor_decode_failures_total", "monitor_model_info",
            "monitor_retrain_runs_total"} <= dashboard_metrics()
    assert all("monitor_" in e for e in dashboard_exprs())
    provisioning = DEPLOY / "grafana" / "provisioning" / "dashboards" / "monitor.yaml"
    assert yaml.safe_load(provisioning.read_text())["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"


# ------------------------------------------------------------------ Dockerfile


def test_dockerfile_essentials() -> None:
    text = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
    assert re.search(r"^ARG PYTHON_IMAGE=python:3\.11-slim", text, re.M)
    assert "download.pytorch.org/whl/cpu" in text
    assert re.search(r"^USER 10001", text, re.M), "the image runs as a non-root user"
    assert re.search(r"^HEALTHCHECK ", text, re.M)
    for line in re.findall(r"^COPY (?!--from)(\S+)", text, re.M):
        assert (REPO / line).exists(), f"Dockerfile copies missing {line}"
    ignore = (REPO / ".dockerignore").read_text(encoding="utf-8")
    assert "!deploy/docker/" in ignore and "!monitor/" in ignore


def test_healthcheck_script_reports_failure(tmp_path: object) -> None:
    script = DEPLOY / "docker" / "healthcheck.py"
    bad = subprocess.run([sys.executable, str(script), "http://127.0.0.1:9/none"], capture_output=True, text=True,
                         timeout=30)
    assert bad.returncode == 1 and "unhealthy" in bad.stderr
    empty = subprocess.run([sys.executable, str(script)], env={"MONITOR_HEALTHCHECK_URL": ""}, capture_output=True,
                           timeout=30)
    assert empty.returncode == 0


# ------------------------------------------------------------------ configuration reference


def test_configuration_reference_matches_the_settings_model() -> None:
    doc = REPO / "docs" / "configuration.md"
    assert doc.read_text(encoding="utf-8") == render_markdown(), (
        "docs/configuration.md is stale: run `python -m monitor config reference --out docs/configuration.md`")
    sample = DEPLOY / "monitor.env.example"
    assert sample.read_text(encoding="utf-8") == render_env_sample(), (
        "deploy/monitor.env.example is stale: run `python -m monitor config reference -f env "
        "--out deploy/monitor.env.example`")


def test_every_setting_is_documented() -> None:
    docs = setting_docs()
    assert len(docs) > 30
    undocumented = [d.env for d in docs if not d.description]
    assert not undocumented, f"settings without description=...: {undocumented}"
    assert {"MONITOR_DB__URL", "MONITOR_KAFKA__SASL_PASSWORD"} <= {d.env for d in docs if d.secret}


def test_config_show_masks_secrets() -> None:
    env = {"PATH": "/usr/bin:/bin", "MONITOR_DB__URL": "postgresql+psycopg://monitor:s3cr3t-pw@db:5432/monitor",
           "MONITOR_KAFKA__SASL_PASSWORD": "kafka-s3cr3t", "MONITOR_KAFKA__TOPIC": "plant-7"}
    out = subprocess.run([sys.executable, "-m", "monitor", "config", "show"], cwd=REPO, env=env, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "s3cr3t" not in out.stdout + out.stderr
    assert "MONITOR_DB__URL=postgresql+psycopg://monitor:***@db:5432/monitor" in out.stdout
    assert "MONITOR_KAFKA__SASL_PASSWORD=***" in out.stdout
    assert "MONITOR_KAFKA__TOPIC=plant-7" in out.stdout


def test_config_reference_check_mode(tmp_path: object) -> None:
    from pathlib import Path

    target = Path(str(tmp_path)) / "configuration.md"
    target.write_text("stale\n")
    cmd = [sys.executable, "-m", "monitor", "config", "reference", "--out", str(target)]
    stale = subprocess.run([*cmd, "--check"], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert stale.returncode == 1 and "out of date" in stale.stderr
    assert subprocess.run(cmd, cwd=REPO, capture_output=True, timeout=60).returncode == 0
    assert target.read_text() == render_markdown()
    assert subprocess.run([*cmd, "--check"], cwd=REPO, capture_output=True, timeout=60).returncode == 0
