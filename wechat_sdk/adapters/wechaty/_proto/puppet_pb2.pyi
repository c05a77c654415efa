import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PayloadType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PAYLOAD_TYPE_UNSPECIFIED: _ClassVar[PayloadType]
    PAYLOAD_TYPE_MESSAGE: _ClassVar[PayloadType]
    PAYLOAD_TYPE_CONTACT: _ClassVar[PayloadType]
    PAYLOAD_TYPE_ROOM: _ClassVar[PayloadType]
    PAYLOAD_TYPE_ROOM_MEMBER: _ClassVar[PayloadType]
    PAYLOAD_TYPE_FRIENDSHIP: _ClassVar[PayloadType]

class EventType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EVENT_TYPE_UNSPECIFIED: _ClassVar[EventType]
    EVENT_TYPE_HEARTBEAT: _ClassVar[EventType]
    EVENT_TYPE_MESSAGE: _ClassVar[EventType]
    EVENT_TYPE_DONG: _ClassVar[EventType]
    EVENT_TYPE_POST: _ClassVar[EventType]
    EVENT_TYPE_ERROR: _ClassVar[EventType]
    EVENT_TYPE_FRIENDSHIP: _ClassVar[EventType]
    EVENT_TYPE_ROOM_INVITE: _ClassVar[EventType]
    EVENT_TYPE_ROOM_JOIN: _ClassVar[EventType]
    EVENT_TYPE_ROOM_LEAVE: _ClassVar[EventType]
    EVENT_TYPE_ROOM_TOPIC: _ClassVar[EventType]
    EVENT_TYPE_SCAN: _ClassVar[EventType]
    EVENT_TYPE_READY: _ClassVar[EventType]
    EVENT_TYPE_RESET: _ClassVar[EventType]
    EVENT_TYPE_LOGIN: _ClassVar[EventType]
    EVENT_TYPE_LOGOUT: _ClassVar[EventType]
    EVENT_TYPE_DIRTY: _ClassVar[EventType]
PAYLOAD_TYPE_UNSPECIFIED: PayloadType
PAYLOAD_TYPE_MESSAGE: PayloadType
PAYLOAD_TYPE_CONTACT: PayloadType
PAYLOAD_TYPE_ROOM: PayloadType
PAYLOAD_TYPE_ROOM_MEMBER: PayloadType
PAYLOAD_TYPE_FRIENDSHIP: PayloadType
EVENT_TYPE_UNSPECIFIED: EventType
EVENT_TYPE_HEARTBEAT: EventType
EVENT_TYPE_MESSAGE: EventType
EVENT_TYPE_DONG: EventType
EVENT_TYPE_POST: EventType
EVENT_TYPE_ERROR: EventType
EVENT_TYPE_FRIENDSHIP: EventType
EVENT_TYPE_ROOM_INVITE: EventType
EVENT_TYPE_ROOM_JOIN: EventType
EVENT_TYPE_ROOM_LEAVE: EventType
EVENT_TYPE_ROOM_TOPIC: EventType
EVENT_TYPE_SCAN: EventType
EVENT_TYPE_READY: EventType
EVENT_TYPE_RESET: EventType
EVENT_TYPE_LOGIN: EventType
EVENT_TYPE_LOGOUT: EventType
EVENT_TYPE_DIRTY: EventType

class StartRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class StartResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class StopRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class StopResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class LogoutRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class LogoutResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class DingRequest(_message.Message):
    __slots__ = ("data",)
    DATA_FIELD_NUMBER: _ClassVar[int]
    data: str
    def __init__(self, data: _Optional[str] = ...) -> None: ...

class DingResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class VersionRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class VersionResponse(_message.Message):
    __slots__ = ("version",)
    VERSION_FIELD_NUMBER: _ClassVar[int]
    version: str
    def __init__(self, version: _Optional[str] = ...) -> None: ...

class DirtyPayloadRequest(_message.Message):
    __slots__ = ("type", "id")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    type: PayloadType
    id: str
    def __init__(self, type: _Optional[_Union[PayloadType, str]] = ..., id: _Optional[str] = ...) -> None: ...

class DirtyPayloadResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class EventRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class EventResponse(_message.Message):
    __slots__ = ("type", "payload")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    type: int
    payload: str
    def __init__(self, type: _Optional[int] = ..., payload: _Optional[str] = ...) -> None: ...

class ContactPayloadRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class ContactPayloadResponse(_message.Message):
    __slots__ = ("id", "gender", "type", "name", "avatar", "address", "alias", "city", "friend", "province", "signature", "star", "weixin", "corporation", "title", "description", "coworker", "phones")
    ID_FIELD_NUMBER: _ClassVar[int]
    GENDER_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    AVATAR_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    ALIAS_FIELD_NUMBER: _ClassVar[int]
    CITY_FIELD_NUMBER: _ClassVar[int]
    FRIEND_FIELD_NUMBER: _ClassVar[int]
    PROVINCE_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    STAR_FIELD_NUMBER: _ClassVar[int]
    WEIXIN_FIELD_NUMBER: _ClassVar[int]
    CORPORATION_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    COWORKER_FIELD_NUMBER: _ClassVar[int]
    PHONES_FIELD_NUMBER: _ClassVar[int]
    id: str
    gender: int
    type: int
    name: str
    avatar: str
    address: str
    alias: str
    city: str
    friend: bool
    province: str
    signature: str
    star: bool
    weixin: str
    corporation: str
    title: str
    description: str
    coworker: bool
    phones: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, id: _Optional[str] = ..., gender: _Optional[int] = ..., type: _Optional[int] = ..., name: _Optional[str] = ..., avatar: _Optional[str] = ..., address: _Optional[str] = ..., alias: _Optional[str] = ..., city: _Optional[str] = ..., friend: _Optional[bool] = ..., province: _Optional[str] = ..., signature: _Optional[str] = ..., star: _Optional[bool] = ..., weixin: _Optional[str] = ..., corporation: _Optional[str] = ..., title: _Optional[str] = ..., description: _Optional[str] = ..., coworker: _Optional[bool] = ..., phones: _Optional[_Iterable[str]] = ...) -> None: ...

class RoomPayloadRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class RoomPayloadResponse(_message.Message):
    __slots__ = ("id", "topic", "avatar", "owner_id", "admin_ids", "member_ids", "handle")
    ID_FIELD_NUMBER: _ClassVar[int]
    TOPIC_FIELD_NUMBER: _ClassVar[int]
    AVATAR_FIELD_NUMBER: _ClassVar[int]
    OWNER_ID_FIELD_NUMBER: _ClassVar[int]
    ADMIN_IDS_FIELD_NUMBER: _ClassVar[int]
    MEMBER_IDS_FIELD_NUMBER: _ClassVar[int]
    HANDLE_FIELD_NUMBER: _ClassVar[int]
    id: str
    topic: str
    avatar: str
    owner_id: str
    admin_ids: _containers.RepeatedScalarFieldContainer[str]
    member_ids: _containers.RepeatedScalarFieldContainer[str]
    handle: str
    def __init__(self, id: _Optional[str] = ..., topic: _Optional[str] = ..., avatar: _Optional[str] = ..., owner_id: _Optional[str] = ..., admin_ids: _Optional[_Iterable[str]] = ..., member_ids: _Optional[_Iterable[str]] = ..., handle: _Optional[str] = ...) -> None: ...

class RoomMemberPayloadRequest(_message.Message):
    __slots__ = ("id", "member_id")
    ID_FIELD_NUMBER: _ClassVar[int]
    MEMBER_ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    member_id: str
    def __init__(self, id: _Optional[str] = ..., member_id: _Optional[str] = ...) -> None: ...

class RoomMemberPayloadResponse(_message.Message):
    __slots__ = ("id", "room_alias", "inviter_id", "avatar", "name")
    ID_FIELD_NUMBER: _ClassVar[int]
    ROOM_ALIAS_FIELD_NUMBER: _ClassVar[int]
    INVITER_ID_FIELD_NUMBER: _ClassVar[int]
    AVATAR_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    id: str
    room_alias: str
    inviter_id: str
    avatar: str
    name: str
    def __init__(self, id: _Optional[str] = ..., room_alias: _Optional[str] = ..., inviter_id: _Optional[str] = ..., avatar: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class MessagePayloadRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class MessagePayloadResponse(_message.Message):
    __slots__ = ("id", "filename", "text", "timestamp_deprecated", "type", "talker_id", "room_id", "listener_id", "mention_ids", "receive_time")
    ID_FIELD_NUMBER: _ClassVar[int]
    FILENAME_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_DEPRECATED_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    TALKER_ID_FIELD_NUMBER: _ClassVar[int]
    ROOM_ID_FIELD_NUMBER: _ClassVar[int]
    LISTENER_ID_FIELD_NUMBER: _ClassVar[int]
    MENTION_IDS_FIELD_NUMBER: _ClassVar[int]
    RECEIVE_TIME_FIELD_NUMBER: _ClassVar[int]
    id: str
    filename: str
    text: str
    timestamp_deprecated: int
    type: int
    talker_id: str
    room_id: str
    listener_id: str
    mention_ids: _containers.RepeatedScalarFieldContainer[str]
    receive_time: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., filename: _Optional[str] = ..., text: _Optional[str] = ..., timestamp_deprecated: _Optional[int] = ..., type: _Optional[int] = ..., talker_id: _Optional[str] = ..., room_id: _Optional[str] = ..., listener_id: _Optional[str] = ..., mention_ids: _Optional[_Iterable[str]] = ..., receive_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class MessageFileRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class MessageFileResponse(_message.Message):
    __slots__ = ("file_box",)
    FILE_BOX_FIELD_NUMBER: _ClassVar[int]
    file_box: str
    def __init__(self, file_box: _Optional[str] = ...) -> None: ...

class MessageSendTextRequest(_message.Message):
    __slots__ = ("conversation_id", "text", "mentional_ids")
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    MENTIONAL_IDS_FIELD_NUMBER: _ClassVar[int]
    conversation_id: str
    text: str
    mentional_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, conversation_id: _Optional[str] = ..., text: _Optional[str] = ..., mentional_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class MessageSendTextResponse(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class MessageSendFileRequest(_message.Message):
    __slots__ = ("conversation_id", "file_box")
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    FILE_BOX_FIELD_NUMBER: _ClassVar[int]
    conversation_id: str
    file_box: str
    def __init__(self, conversation_id: _Optional[str] = ..., file_box: _Optional[str] = ...) -> None: ...

class MessageSendFileResponse(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class DownloadRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class DownloadResponse(_message.Message):
    __slots__ = ("chunk",)
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    chunk: bytes
    def __init__(self, chunk: _Optional[bytes] = ...) -> None: ...

class UploadRequest(_message.Message):
    __slots__ = ("chunk",)
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    chunk: bytes
    def __init__(self, chunk: _Optional[bytes] = ...) -> None: ...

class UploadResponse(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...
