"""The slice of Envoy's ext_proc protocol clauditor speaks, defined here in Python.

Why not the `xds-protos` wheel: it also ships an old copy of `opentelemetry/proto/*`,
and installed after `opentelemetry-proto` it overwrites those files, which breaks the
OTLP exporters (`ImportError: InstrumentationScope`). So clauditor describes the few
messages it needs itself, with Envoy's package, message names and field numbers
(envoy/service/ext_proc/v3/external_processor.proto, envoy/config/core/v3/base.proto),
in a private descriptor pool. Protobuf skips fields it does not know, so the subset
reads Envoy's messages as they are; the integration tests talk to the real Envoy.
"""

from __future__ import annotations

from typing import Any

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

_EXT = ".envoy.service.ext_proc.v3"
SERVICE = "envoy.service.ext_proc.v3.ExternalProcessor"
METHOD = "Process"

_F = descriptor_pb2.FieldDescriptorProto
_OPTIONAL, _REPEATED = _F.LABEL_OPTIONAL, _F.LABEL_REPEATED
_MESSAGE, _BOOL, _STRING, _BYTES = _F.TYPE_MESSAGE, _F.TYPE_BOOL, _F.TYPE_STRING, _F.TYPE_BYTES


def _message(
    file: descriptor_pb2.FileDescriptorProto,
    name: str,
    fields: list[tuple[str, int, int, int, str | None, int | None]],
    oneofs: tuple[str, ...] = (),
) -> None:
    msg = file.message_type.add(name=name)
    for oneof in oneofs:
        msg.oneof_decl.add(name=oneof)
    for field_name, number, kind, label, type_name, oneof_index in fields:
        field = msg.field.add(name=field_name, number=number, type=kind, label=label)
        if type_name is not None:
            field.type_name = type_name
        if oneof_index is not None:
            field.oneof_index = oneof_index


def _build_pool() -> descriptor_pool.DescriptorPool:
    pool = descriptor_pool.DescriptorPool()
    core = descriptor_pb2.FileDescriptorProto(
        name="clauditor/envoy_core_subset.proto", package="envoy.config.core.v3", syntax="proto3"
    )
    _message(
        core,
        "HeaderValue",
        [
            ("key", 1, _STRING, _OPTIONAL, None, None),
            ("value", 2, _STRING, _OPTIONAL, None, None),
            ("raw_value", 3, _BYTES, _OPTIONAL, None, None),
        ],
    )
    _message(
        core,
        "HeaderMap",
        [("headers", 1, _MESSAGE, _REPEATED, ".envoy.config.core.v3.HeaderValue", None)],
    )
    pool.Add(core)

    ext = descriptor_pb2.FileDescriptorProto(
        name="clauditor/ext_proc_subset.proto",
        package="envoy.service.ext_proc.v3",
        syntax="proto3",
        dependency=[core.name],
    )
    headers, body = ".envoy.service.ext_proc.v3.HttpHeaders", ".envoy.service.ext_proc.v3.HttpBody"
    trailers = ".envoy.service.ext_proc.v3.HttpTrailers"
    _message(
        ext,
        "HttpHeaders",
        [
            ("headers", 1, _MESSAGE, _OPTIONAL, ".envoy.config.core.v3.HeaderMap", None),
            ("end_of_stream", 3, _BOOL, _OPTIONAL, None, None),
        ],
    )
    _message(
        ext,
        "HttpBody",
        [
            ("body", 1, _BYTES, _OPTIONAL, None, None),
            ("end_of_stream", 2, _BOOL, _OPTIONAL, None, None),
        ],
    )
    _message(
        ext,
        "HttpTrailers",
        [("trailers", 1, _MESSAGE, _OPTIONAL, ".envoy.config.core.v3.HeaderMap", None)],
    )
    _message(
        ext,
        "ProcessingRequest",
        [
            ("request_headers", 2, _MESSAGE, _OPTIONAL, headers, 0),
            ("response_headers", 3, _MESSAGE, _OPTIONAL, headers, 0),
            ("request_body", 4, _MESSAGE, _OPTIONAL, body, 0),
            ("response_body", 5, _MESSAGE, _OPTIONAL, body, 0),
            ("request_trailers", 6, _MESSAGE, _OPTIONAL, trailers, 0),
            ("response_trailers", 7, _MESSAGE, _OPTIONAL, trailers, 0),
            ("observability_mode", 10, _BOOL, _OPTIONAL, None, None),
        ],
        oneofs=("request",),
    )
    # Replies are only sent in normal (non-observability) mode: an empty CommonResponse
    # means CONTINUE.
    _message(ext, "CommonResponse", [])
    common = ".envoy.service.ext_proc.v3.CommonResponse"
    for name in ("HeadersResponse", "BodyResponse"):
        _message(ext, name, [("response", 1, _MESSAGE, _OPTIONAL, common, None)])
    _message(ext, "TrailersResponse", [])
    headers_r, body_r = f"{_EXT}.HeadersResponse", f"{_EXT}.BodyResponse"
    trailers_r = f"{_EXT}.TrailersResponse"
    _message(
        ext,
        "ProcessingResponse",
        [
            ("request_headers", 1, _MESSAGE, _OPTIONAL, headers_r, 0),
            ("response_headers", 2, _MESSAGE, _OPTIONAL, headers_r, 0),
            ("request_body", 3, _MESSAGE, _OPTIONAL, body_r, 0),
            ("response_body", 4, _MESSAGE, _OPTIONAL, body_r, 0),
            ("request_trailers", 5, _MESSAGE, _OPTIONAL, trailers_r, 0),
            ("response_trailers", 6, _MESSAGE, _OPTIONAL, trailers_r, 0),
        ],
        oneofs=("response",),
    )
    pool.Add(ext)
    return pool


_POOL = _build_pool()


def _class(full_name: str) -> Any:
    return message_factory.GetMessageClass(_POOL.FindMessageTypeByName(full_name))


HeaderValue = _class("envoy.config.core.v3.HeaderValue")
HeaderMap = _class("envoy.config.core.v3.HeaderMap")
HttpHeaders = _class("envoy.service.ext_proc.v3.HttpHeaders")
HttpBody = _class("envoy.service.ext_proc.v3.HttpBody")
ProcessingRequest = _class("envoy.service.ext_proc.v3.ProcessingRequest")
ProcessingResponse = _class("envoy.service.ext_proc.v3.ProcessingResponse")
HeadersResponse = _class("envoy.service.ext_proc.v3.HeadersResponse")
BodyResponse = _class("envoy.service.ext_proc.v3.BodyResponse")
TrailersResponse = _class("envoy.service.ext_proc.v3.TrailersResponse")


def service_handler(process: Any) -> grpc.GenericRpcHandler:
    """The ExternalProcessor service with `process` as its bidirectional Process method."""
    return grpc.method_handlers_generic_handler(
        SERVICE,
        {
            METHOD: grpc.stream_stream_rpc_method_handler(
                process,
                request_deserializer=ProcessingRequest.FromString,
                response_serializer=ProcessingResponse.SerializeToString,
            )
        },
    )
