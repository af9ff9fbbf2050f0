"""Registers servicers from their service descriptors, with request parsing that
never fails the call with UNKNOWN: a request that does not parse (too deeply
nested, malformed bytes) reaches the servicer as `Undecodable` and is answered
INVALID_ARGUMENT like any other bad input.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf import message_factory
from google.protobuf.descriptor import ServiceDescriptor
from google.protobuf.message import DecodeError

from .. import tracing


@dataclass(frozen=True)
class Undecodable:
    reason: str


def _lenient(parse: Callable[[bytes], Any]) -> Callable[[bytes], Any]:
    def parse_or_mark(data: bytes) -> Any:
        try:
            return parse(data)
        except (DecodeError, RecursionError) as e:
            return Undecodable(str(e))

    return parse_or_mark


def _encoded(message: Any) -> bytes:
    """A stream's messages may come encoded already: one event goes to many watchers."""
    return message if isinstance(message, bytes) else bytes(message.SerializeToString())


def register(server: grpc.aio.Server, servicer: object, service: ServiceDescriptor) -> None:
    handlers = {}
    for method in service.methods:
        request = message_factory.GetMessageClass(method.input_type)
        response = message_factory.GetMessageClass(method.output_type)
        make = grpc.unary_stream_rpc_method_handler if method.server_streaming else grpc.unary_unary_rpc_method_handler
        behavior = getattr(servicer, method.name)
        if tracing.enabled():  # off: the method itself, nothing in between
            behavior = tracing.rpc_handler(service.full_name, method, behavior)
        handlers[method.name] = make(
            behavior,
            request_deserializer=_lenient(request.FromString),
            response_serializer=_encoded if method.server_streaming else response.SerializeToString,
        )
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service.full_name, handlers),))
