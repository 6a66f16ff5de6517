"""deploy/: the Kubernetes manifests validate offline against the Kubernetes schemas and agree with the server (gRPC
probes on its port, grace > drain, the HPA's metric is one the server serves); the rendered nginx config passes
`nginx -t`; a real cluster of 2 replicas behind nginx serves a session through the front and leaves no process."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from serving import assert_valid, write_pair

from runtime.formats.wav import read_audio
from runtime.serving.api import SessionOptions
from runtime.serving.client import AsyncClient, Client
from runtime.serving.metrics import Metrics

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # plain `pytest` (unlike `python -m pytest`) does not put the repo root on the path
    sys.path.insert(0, str(REPO))

from deploy.cluster import Cluster  # noqa: E402
from deploy.nginx import check_nginx_conf, find_nginx, render_nginx_conf, write_nginx_conf  # noqa: E402
from deploy.processes import children  # noqa: E402

K8S = REPO / "deploy" / "k8s"
DEMO = REPO / "runtime" / "assets" / "demo"
NGINX = find_nginx()
needs_nginx = pytest.mark.skipif(NGINX is None, reason="nginx is not installed (scripts/bootstrap.sh with the dev "
                                                       "extra installs it: apt-get install nginx)")  # fmt: skip


def _docs() -> dict[str, dict]:
    out = {}
    for path in sorted(K8S.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            out[doc["kind"]] = doc
    return out


def _flag(args: list[str], name: str) -> str:
    """``--name=value`` or ``--name value`` from a container's args."""
    for i, a in enumerate(args):
        if a.startswith(name + "="):
            return a.split("=", 1)[1]
        if a == name:
            return args[i + 1]
    raise AssertionError(f"{name} is not in {args}")


# ---------------------------------------------------------------------------------------------- Kubernetes
@pytest.mark.parametrize("version", ["1.27.0", kubernetes_validate.latest_version()])
def test_manifests_validate_against_the_kubernetes_schemas(version: str) -> None:
    docs = _docs()
    assert set(docs) == {"Deployment", "Service", "Ingress", "PodDisruptionBudget", "HorizontalPodAutoscaler"}
    for kind, doc in docs.items():
        kubernetes_validate.validate(doc, version, strict=True)  # raises ValidationError naming the field
        assert doc["metadata"]["name"] == "interact-runtime", kind


def test_manifests_agree_with_the_server() -> None:
    docs = _docs()
    deployment, service, ingress = docs["Deployment"], docs["Service"], docs["Ingress"]
    pod = deployment["spec"]["template"]
    container = pod["spec"]["containers"][0]
    command, args = container["command"], container["args"]
    assert command == ["python", "-m", "runtime.server"]
    port, metrics_port = int(_flag(args, "--port")), int(_flag(args, "--metrics-port"))
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"grpc": port, "metrics": metrics_port}
    for kind in ("startupProbe", "readinessProbe", "livenessProbe"):  # the native gRPC probe: grpc.health.v1
        probe = container[kind]
        assert probe["grpc"]["port"] == port and not {"httpGet", "tcpSocket", "exec"} & set(probe), kind
    # Drain: preStop sleep, then SIGTERM lets sessions finish within --grace; the kubelet's clock covers both.
    sleep = container["lifecycle"]["preStop"]["exec"]["command"]
    assert sleep[0] == "sleep"
    assert pod["spec"]["terminationGracePeriodSeconds"] > int(sleep[1]) + float(_flag(args, "--grace")) + 1
    annotations = pod["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true" and int(annotations["prometheus.io/port"]) == metrics_port
    assert annotations["prometheus.io/path"] == "/metrics"
    assert {"cpu", "memory"} <= set(container["resources"]["requests"]) <= set(container["resources"]["limits"])
    # The Service, PDB and HPA select / target these pods; the Ingress speaks gRPC to the Service's grpc port.
    labels = pod["metadata"]["labels"]
    for doc in (service["spec"], docs["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"]):
        selector = doc.get("selector", doc)
        assert all(labels.get(k) == v for k, v in selector.items())
    by_name = {p["name"]: p for p in service["spec"]["ports"]}
    assert by_name["grpc"]["targetPort"] == "grpc" and by_name["grpc"]["appProtocol"] == "kubernetes.io/h2c"
    assert by_name["metrics"]["targetPort"] == "metrics"
    notes = ingress["metadata"]["annotations"]
    assert notes["nginx.ingress.kubernetes.io/backend-protocol"] == "GRPC" and ingress["spec"]["tls"]
    assert min(int(notes[f"nginx.ingress.kubernetes.io/proxy-{d}-timeout"]) for d in ("read", "send")) >= 3600
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend["name"] == service["metadata"]["name"] and backend["port"]["name"] == "grpc"
    hpa = docs["HorizontalPodAutoscaler"]["spec"]
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                     "name": deployment["metadata"]["name"]}  # fmt: skip
    (metric,) = hpa["metrics"]
    assert metric["type"] == "Pods"
    assert 0 < float(metric["pods"]["target"]["averageValue"]) < int(_flag(args, "--max-sessions"))


def test_the_hpa_metric_is_a_gauge_the_server_serves() -> None:
    name = _docs()["HorizontalPodAutoscaler"]["spec"]["metrics"][0]["pods"]["metric"]["name"]
    types = {line.split()[2]: line.split()[3] for line in Metrics().render().splitlines() if line.startswith("# TYPE")}
    assert types.get(name) == "gauge", f"{name} is not a gauge of runtime/serving/metrics.py: {types}"
    rule = (K8S / "README.md").read_text()  # the prometheus-adapter rule that exposes it
    assert f"seriesQuery: '{name}{{" in rule and f'as: "{name}"' in rule


# ---------------------------------------------------------------------------------------------- nginx
def _self_signed(folder: Path) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed (needed for a test certificate)")
    cert, key = folder / "front.crt", folder / "front.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)  # fmt: skip
    return cert, key


def test_rendered_config_has_the_balancer_settings(tmp_path: Path) -> None:
    conf = render_nginx_conf(tmp_path, ("127.0.0.1", 50050), [("127.0.0.1", 41001), ("::1", 41002)])
    assert "{{" not in conf and f"pid {tmp_path.resolve()}/nginx.pid;" in conf
    for line in ("least_conn;", "server 127.0.0.1:41001 max_fails=1 fail_timeout=5s;", "server [::1]:41002 max_fails=1",
                 "listen 127.0.0.1:50050 http2;", "grpc_pass grpc://interact;", "grpc_read_timeout 3700s;",
                 "grpc_send_timeout 3700s;", "client_body_timeout 3700s;", "client_max_body_size 0;",
                 "grpc_next_upstream error timeout;", "grpc_next_upstream_tries 2;", "daemon off;"):  # fmt: skip
        assert line in conf, line
    assert "ssl_certificate" not in conf
    tls = render_nginx_conf(tmp_path, ("127.0.0.1", 50443), [("127.0.0.1", 1)], tls_cert="a.crt", tls_key="a.key",
                            modern_http2=True)  # fmt: skip
    assert "listen 127.0.0.1:50443 ssl;\n        http2 on;" in tls and "ssl_certificate_key " in tls
    with pytest.raises(ValueError, match="both tls_cert and tls_key"):
        render_nginx_conf(tmp_path, ("127.0.0.1", 1), [("127.0.0.1", 2)], tls_cert="a.crt")


@needs_nginx
@pytest.mark.parametrize("tls", [False, True], ids=["plaintext", "tls"])
def test_rendered_config_passes_nginx_t(tmp_path: Path, tls: bool) -> None:
    cert, key = _self_signed(tmp_path) if tls else (None, None)
    conf = render_nginx_conf(tmp_path / "run", ("127.0.0.1", 50050), [("127.0.0.1", 41001), ("127.0.0.1", 41002)],
                             tls_cert=cert, tls_key=key)  # fmt: skip
    write_nginx_conf(tmp_path / "run", conf)
    check = check_nginx_conf(NGINX, tmp_path / "run")
    assert check.returncode == 0, check.stderr
    assert "test is successful" in check.stderr


# ---------------------------------------------------------------------------------------------- a real cluster
@needs_nginx
def test_two_replicas_behind_nginx_serve_a_session_and_stop_cleanly(tmp_path: Path) -> None:
    cluster = Cluster(replicas=2, port=0, max_sessions=2, grace=5, run_dir=tmp_path / "run", start_timeout=60)
    with cluster:
        assert cluster.front_health() == "SERVING" and cluster.front_health("interact.v1.Interact") == "SERVING"
        assert all(r.health() == "SERVING" and r.metric("interact_ready") == 1 for r in cluster.replicas)
        pids = cluster.pids  # the replicas, nginx's master and worker
        assert len(pids) >= 4 and len({r.port for r in cluster.replicas} | {cluster.port}) == 3
        with Client(cluster.front, connect_timeout=10) as client:  # the project's client, through nginx
            result = client.replay_wavs(DEMO / "a.wav", DEMO / "b.wav", SessionOptions(seed=3), realtime=False)
        assert result.status.code == "success" and result.status.frames == 600
        assert_valid(result.frames, 600)  # 20 s x 30 fps, every frame, in order
        assert sum(r.metric("interact_frames_sent_total") for r in cluster.replicas) == 600  # one replica served
        log = (cluster.run_dir / "access.log").read_text()
        assert '"POST /interact.v1.Interact/Stream HTTP/2.0" 200 grpc_status=0/' in log, log
        # A crashed replica: nginx's connect fails, it marks the replica down (max_fails=1) and retries the other.
        dead = cluster.replicas[0]
        dead.kill(signal.SIGKILL)
        assert dead.wait(5) == -signal.SIGKILL
        assert [cluster.front_health() for _ in range(4)] == ["SERVING"] * 4
        assert "Connection refused) while connecting to upstream" in (cluster.run_dir / "error.log").read_text()
    assert all(not r.alive for r in cluster.replicas) and not cluster.nginx.alive
    assert not [pid for pid in pids if Path(f"/proc/{pid}").exists()], "processes left behind"
    assert not set(pids) & set(children(os.getpid()))
    assert (tmp_path / "run" / "replica-1.log").exists()  # a given run dir is kept


@pytest.fixture(scope="module")
def tls_cluster(tmp_path_factory: pytest.TempPathFactory):
    """One replica behind a TLS front (self-signed certificate for 127.0.0.1)."""
    if NGINX is None:
        pytest.skip("nginx is not installed")
    cert, key = _self_signed(tmp_path_factory.mktemp("tls"))
    with Cluster(replicas=1, port=0, tls_cert=cert, tls_key=key, grace=2, start_timeout=60) as cluster:
        yield cluster, cert.read_bytes()
    assert not cluster.run_dir.exists()  # a temp run dir is removed after a clean stop
    assert not cluster.pids and not cluster.nginx.alive


@needs_nginx
def test_tls_front_terminates_tls_for_unary_calls(tls_cluster) -> None:
    cluster, root = tls_cluster
    assert cluster.describe().startswith(f"front {cluster.front} (TLS) -> 1 replica (127.0.0.1:")
    assert cluster.front_health("interact.v1.Interact") == "SERVING"  # verified against the certificate
    with Client(cluster.front, root_certificates=root, connect_timeout=10) as client:
        info = client.describe()  # DescribeModel through TLS -> h2c
    assert info.fps == 30 and len(info.blendshape_names) == 52


@needs_nginx
def test_a_session_opens_promptly_through_the_tls_front(tls_cluster, tmp_path: Path) -> None:
    cluster, root = tls_cluster
    a, b = write_pair(tmp_path, seconds=2.0)

    async def session() -> int:
        async with AsyncClient(cluster.front, root_certificates=root, connect_timeout=10) as client:
            stream = await asyncio.wait_for(client.open(SessionOptions(seed=1)), timeout=5.0)
            await stream.send_audio(read_audio(a, 16_000).channels[0], 0)
            await stream.send_audio(read_audio(b, 16_000).channels[0], 1)
            await stream.end()
            return (await asyncio.wait_for(stream.collect(), timeout=20.0)).n_frames

    assert asyncio.run(session()) == 72  # ceil(2.37 s x 30)
