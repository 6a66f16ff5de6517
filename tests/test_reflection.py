"""Server reflection as tools use it: v1alpha through grpcio-reflection's own client, v1 from hand-encoded bytes."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase
from serving import running

from runtime.serving.server import ServerThread


@pytest.fixture(scope="module")
def server(untrained_bundle: Path):
    with running(untrained_bundle) as srv:
        yield srv


def test_reflection_lists_the_services(server: ServerThread) -> None:
    from google.protobuf.descriptor_pool import DescriptorPool

    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as ch:
        db = ProtoReflectionDescriptorDatabase(ch)
        services = set(db.get_services())
        methods = {m.name for m in DescriptorPool(db).FindServiceByName("interact.v1.Interact").methods}
    assert {"interact.v1.Interact", "grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection",
            "grpc.reflection.v1.ServerReflection"} <= services  # fmt: skip
    assert methods == {"Stream", "DescribeModel"}


def _fields(data: bytes) -> list[tuple[int, bytes]]:
    """(field number, bytes) of the length-delimited fields of a protobuf message, decoded by hand."""

    def varint(i: int) -> tuple[int, int]:
        value = shift = 0
        while True:
            b = data[i]
            value, shift, i = value | (b & 0x7F) << shift, shift + 7, i + 1
            if b < 0x80:
                return value, i

    out, i = [], 0
    while i < len(data):
        key, i = varint(i)
        assert key & 7 == 2, "only length-delimited fields expected here"
        n, i = varint(i)
        out.append((key >> 3, data[i : i + n]))
        i += n
    return out


def test_reflection_v1_answers_a_hand_encoded_request(server: ServerThread) -> None:
    """grpcurl and current tools ask grpc.reflection.v1 first; the request and reply bytes are written and read by
    hand from reflection.proto's field numbers, not with any generated class."""
    list_services = bytes([7 << 3 | 2, 0])  # ServerReflectionRequest.list_services = ""
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as ch:
        call = ch.stream_stream("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo")
        reply = next(iter(call(iter([list_services]), timeout=10)))
    fields = dict(_fields(reply))
    assert fields[2] == list_services  # original_request echoed
    names = {dict(_fields(service))[1].decode() for _, service in _fields(fields[6])}  # list_services_response
    assert {"interact.v1.Interact", "grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection"} <= names
