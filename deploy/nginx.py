"""The nginx gRPC load balancer's configuration: ``deploy/nginx.conf.template`` rendered for a run dir.

    conf = render_nginx_conf("/tmp/run", ("127.0.0.1", 50050), [("127.0.0.1", 41001), ("127.0.0.1", 41002)])
    write_nginx_conf("/tmp/run", conf)      # also creates the temp/log folders nginx needs
    nginx -p /tmp/run -c /tmp/run/nginx.conf

Optional TLS termination (``tls_cert``/``tls_key``): the front port speaks TLS (ALPN h2) and the replicas stay
plaintext on loopback. nginx 1.25.1 and later take ``http2 on;`` instead of ``listen ... http2``
(``modern_http2``; ``nginx_version()`` tells which one is installed).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

TEMPLATE = Path(__file__).with_name("nginx.conf.template")
STREAM_TIMEOUT = 3700  # s: idle timeout of a stream (an hour-long session may pause its audio)
TEMP_DIRS = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")


def find_nginx() -> str | None:
    """The nginx binary: on PATH, or in the sbin folders an ordinary user's PATH often lacks."""
    return shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin:/usr/local/nginx/sbin")


def nginx_version(binary: str) -> tuple[int, ...]:
    """``nginx -v`` as a tuple, e.g. (1, 22, 1)."""
    out = subprocess.run([binary, "-v"], capture_output=True, text=True, timeout=10)
    m = re.search(r"nginx/(\d+(?:\.\d+)*)", out.stderr + out.stdout)
    if m is None:
        raise RuntimeError(f"{binary} -v printed no version: {out.stderr.strip()!r}")
    return tuple(int(x) for x in m.group(1).split("."))


def _address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host and not host.startswith("[") else f"{host}:{port}"


def render_nginx_conf(run_dir: str | Path, listen: tuple[str, int], upstreams: Sequence[tuple[str, int]], *,
                      tls_cert: str | Path | None = None, tls_key: str | Path | None = None,
                      fail_timeout: float = 5.0, stream_timeout: int = STREAM_TIMEOUT, worker_processes: int = 1,
                      worker_connections: int = 1024, modern_http2: bool = False) -> str:  # fmt: skip
    """The nginx.conf text: ``listen`` = (host, port) of the front, ``upstreams`` = the replicas' (host, port)."""
    if not upstreams:
        raise ValueError("at least one upstream replica is needed")
    if (tls_cert is None) != (tls_key is None):
        raise ValueError("TLS needs both tls_cert and tls_key")
    run_dir = Path(run_dir).resolve()
    servers = "\n".join(f"        server {_address(h, p)} max_fails=1 fail_timeout={fail_timeout:g}s;"
                        for h, p in upstreams)  # fmt: skip
    front = _address(*listen)
    tls = tls_cert is not None
    if modern_http2:
        listen_lines = f"        listen {front}{' ssl' if tls else ''};\n        http2 on;"
    else:
        listen_lines = f"        listen {front}{' ssl' if tls else ''} http2;"
    tls_lines = ""
    if tls:
        tls_lines = "\n".join([
            "        # TLS terminates here; the replicas behind are plaintext on loopback. ALPN offers h2.",
            "        # Over TLS nginx keeps a response HEADERS frame in its SSL buffer until a DATA frame flushes it",
            "        # (nginx PR #808): a client must not wait for a Stream's headers before sending its config",
            "        # (runtime.serving.client waits at most 0.3 s; docs/streaming.md).",
            f"        ssl_certificate {Path(tls_cert).resolve()};",
            f"        ssl_certificate_key {Path(tls_key).resolve()};",
            "        ssl_protocols TLSv1.2 TLSv1.3;",
            "        ssl_session_cache shared:interact_tls:1m;",
            "        ssl_session_timeout 1h;",
        ])  # fmt: skip
    values = {
        "run_dir": str(run_dir),
        "worker_processes": str(worker_processes),
        "worker_connections": str(worker_connections),
        "upstream_servers": servers,
        "listen": listen_lines,
        "tls": tls_lines,
        "stream_timeout": str(int(stream_timeout)),
        "next_upstream_tries": str(len(upstreams)),
    }

    def fill(m: re.Match) -> str:
        if m.group(1) not in values:
            raise KeyError(f"{TEMPLATE.name}: no value for {{{{{m.group(1)}}}}}")
        return values[m.group(1)]

    return re.sub(r"\{\{(\w+)\}\}", fill, TEMPLATE.read_text())


def write_nginx_conf(run_dir: str | Path, conf: str) -> Path:
    """Write ``run_dir/nginx.conf`` and create the temp folders; returns the conf's path."""
    run_dir = Path(run_dir)
    for name in TEMP_DIRS:
        (run_dir / "tmp" / name).mkdir(parents=True, exist_ok=True)
    path = run_dir / "nginx.conf"
    path.write_text(conf)
    return path


def nginx_command(binary: str, run_dir: str | Path) -> list[str]:
    """The foreground nginx command for a run dir (``daemon off`` is in the conf)."""
    run_dir = Path(run_dir).resolve()
    return [binary, "-p", f"{run_dir}/", "-c", str(run_dir / "nginx.conf")]


def check_nginx_conf(binary: str, run_dir: str | Path) -> subprocess.CompletedProcess:
    """``nginx -t`` on the run dir's conf (returncode 0 = valid; the reason is in stderr)."""
    return subprocess.run([*nginx_command(binary, run_dir), "-t"], capture_output=True, text=True, timeout=30)
