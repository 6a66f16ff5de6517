"""Server reflection under both names clients use: ``grpc.reflection.v1`` (grpcurl, Postman, current gRPC tools) and
``grpc.reflection.v1alpha`` (older ones). grpcio-reflection implements only v1alpha; the two protocols' messages are
the same fields under another package name (grpc/grpc-proto: grpc/reflection/v1/reflection.proto was copied from
v1alpha), so v1's wire bytes are read and written with v1alpha's message classes by one servicer.
"""

from __future__ import annotations

import grpc
from grpc_reflection.v1alpha import reflection
from grpc_reflection.v1alpha import reflection_pb2 as messages

V1 = "grpc.reflection.v1.ServerReflection"
SERVICE_NAMES = (V1, reflection.SERVICE_NAME)


def serve_reflection(server: grpc.aio.Server, services: tuple[str, ...]) -> None:
    """Reflection (v1 and v1alpha) listing ``services`` and itself on an asyncio server."""
    servicer = reflection.aio.ReflectionServicer((*services, *SERVICE_NAMES))
    for name in SERVICE_NAMES:
        handler = grpc.stream_stream_rpc_method_handler(
            servicer.ServerReflectionInfo,
            request_deserializer=messages.ServerReflectionRequest.FromString,
            response_serializer=messages.ServerReflectionResponse.SerializeToString,
        )
        methods = grpc.method_handlers_generic_handler(name, {"ServerReflectionInfo": handler})
        server.add_generic_rpc_handlers((methods,))
