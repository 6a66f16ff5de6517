"""Bearer-token authentication for the gRPC server (DESIGN 8): ``authorization: Bearer <token>`` metadata.

Only the Interact service is guarded; health checks and reflection stay open so load balancers and tools can probe
the server without the secret. Tokens are compared in constant time.
"""

from __future__ import annotations

import hmac

import grpc

from runtime.serving.metrics import Metrics


def _abort_handler(handler: grpc.RpcMethodHandler, code: grpc.StatusCode, message: str) -> grpc.RpcMethodHandler:
    """A handler of the same shape as ``handler`` that ends the call with ``code``."""

    async def abort(_request, context: grpc.aio.ServicerContext) -> None:
        await context.abort(code, message)

    kind = (handler.request_streaming, handler.response_streaming)
    make = {(False, False): grpc.unary_unary_rpc_method_handler, (False, True): grpc.unary_stream_rpc_method_handler,
            (True, False): grpc.stream_unary_rpc_method_handler,
            (True, True): grpc.stream_stream_rpc_method_handler}[kind]  # fmt: skip
    return make(abort, request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer)  # fmt: skip


class BearerTokenInterceptor(grpc.aio.ServerInterceptor):
    """Requires ``authorization: Bearer <token>`` on the methods of ``service`` (e.g. "interact.v1.Interact"). The
    scheme is case-insensitive (RFC 7235: "bearer" and "BEARER" too); the token must match exactly."""

    def __init__(self, token: str, metrics: Metrics, service: str) -> None:
        self._expected = token.encode()
        self._metrics = metrics
        self._prefix = f"/{service}/"

    async def intercept_service(self, continuation, details: grpc.HandlerCallDetails):
        handler = await continuation(details)
        if handler is None or not details.method.startswith(self._prefix):
            return handler
        values = [v for k, v in details.invocation_metadata or () if k == "authorization"]
        got = values[0] if len(values) == 1 and isinstance(values[0], str) else ""
        scheme, _, token = got.strip().partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), self._expected):
            return handler
        self._metrics.reject("unauthenticated")
        reason = ("missing metadata 'authorization: Bearer <token>'" if not values
                  else f"{len(values)} 'authorization' headers; send exactly one" if len(values) > 1
                  else "metadata 'authorization' does not carry a valid bearer token")  # fmt: skip
        return _abort_handler(handler, grpc.StatusCode.UNAUTHENTICATED, reason)
