"""The server's limits against bad or hostile input (issue 15): a poisoned bundle, a flood of controls, an oversized
message; each against a real server on port 0."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import grpc
import pytest
from serving import config, health, running, wait_until

from runtime.serving.api import SessionOptions
from runtime.serving.client import Client
from runtime.serving.convert import options_to_proto
from runtime.serving.server import ServerThread

SEED = 7


def test_a_flood_of_controls_ends_that_session_with_resource_exhausted(untrained_bundle: Path) -> None:
    """Issue 15: 100k controls over the wire were all kept and scanned every frame; now the session ends, precisely."""
    from runtime.engine.stream import MAX_PENDING_CONTROLS

    with running(untrained_bundle) as srv, Client(f"127.0.0.1:{srv.port}") as client:
        stream = client.open(SessionOptions(seed=SEED))
        for i in range(MAX_PENDING_CONTROLS + 1):  # the last one overflows; nothing is written after it (no race)
            stream.control(i % 2, 60.0 + i / 30, "sit", None)
        with pytest.raises(grpc.RpcError) as e:
            stream.collect()
    assert e.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "already waiting" in e.value.details()


def test_a_bundle_with_nan_statistics_never_goes_serving(untrained_bundle: Path, tmp_path: Path) -> None:
    """Issue 15: a NaN in the normalisation table used to be served as healthy, every frame NaN with status SUCCESS."""
    from runtime.model.bundle import BundleError

    bad = tmp_path / "bundle"
    shutil.copytree(untrained_bundle, bad, ignore=shutil.ignore_patterns("checkpoints"))
    manifest = bad / "manifest.json"
    manifest.write_text(manifest.read_text().replace('"mean": [', '"mean": [NaN, ', 1))
    srv = ServerThread(config(bad), load=False).start()
    try:
        with pytest.raises(BundleError, match="non-finite number NaN"):
            srv.load()
        assert health(srv.port) == "NOT_SERVING"
    finally:
        srv.stop()


def test_an_oversized_message_is_logged_with_its_likely_reason(untrained_bundle: Path, caplog) -> None:
    """Issue 15: the transport ends such a call with RESOURCE_EXHAUSTED, which the server only sees as a cancellation;
    the log line used to blame the client alone."""
    from runtime.serving.protos.interact.v1 import interact_pb2 as ipb
    from runtime.serving.protos.interact.v1 import interact_pb2_grpc as ipb_grpc
    from runtime.serving.server import MAX_MESSAGE_BYTES

    def messages():
        yield ipb.ClientMessage(config=options_to_proto(SessionOptions(seed=SEED)))
        yield ipb.ClientMessage(audio=ipb.AudioChunk(speaker=ipb.SPEAKER_A, data=bytes(MAX_MESSAGE_BYTES + 64)))

    caplog.set_level(logging.INFO, logger="runtime.serving.server")
    with running(untrained_bundle) as srv:
        options = [("grpc.max_send_message_length", 64 << 20)]
        with grpc.insecure_channel(f"127.0.0.1:{srv.port}", options=options) as ch, pytest.raises(grpc.RpcError) as e:
            list(ipb_grpc.InteractStub(ch).Stream(messages(), timeout=10))
        assert e.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        wait_until(lambda: srv.server.metrics.active == 0, "the session to be released")
    assert any("over the 4 MiB limit" in r.getMessage() for r in caplog.records)
