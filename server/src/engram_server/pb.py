"""The API's messages in one namespace: protobuf's generated (upb) classes from `_gen/`.

The server decodes each request once into these classes and encodes each response once from
them, on every transport (docs/design/transport.md). `make generate` writes `_gen/`; the
well-known types the API uses are re-exported here so that the service layer imports one module.
"""

from google.protobuf.field_mask_pb2 import FieldMask as FieldMask
from google.protobuf.struct_pb2 import ListValue as ListValue
from google.protobuf.struct_pb2 import Struct as Struct
from google.protobuf.struct_pb2 import Value as Value
from google.protobuf.timestamp_pb2 import Timestamp as Timestamp

from ._gen.engram.v1.enums_pb2 import *  # noqa: F403
from ._gen.engram.v1.messages_pb2 import *  # noqa: F403
from ._gen.engram.v1.request_response_pb2 import *  # noqa: F403
