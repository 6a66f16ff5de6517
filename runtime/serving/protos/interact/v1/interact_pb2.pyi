from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SampleFormat(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SAMPLE_FORMAT_UNSPECIFIED: _ClassVar[SampleFormat]
    SAMPLE_FORMAT_PCM_S16LE: _ClassVar[SampleFormat]
    SAMPLE_FORMAT_F32LE: _ClassVar[SampleFormat]

class ChannelLayout(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CHANNEL_LAYOUT_UNSPECIFIED: _ClassVar[ChannelLayout]
    CHANNEL_LAYOUT_MONO_PER_SPEAKER: _ClassVar[ChannelLayout]
    CHANNEL_LAYOUT_STEREO: _ClassVar[ChannelLayout]

class Speaker(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SPEAKER_UNSPECIFIED: _ClassVar[Speaker]
    SPEAKER_A: _ClassVar[Speaker]
    SPEAKER_B: _ClassVar[Speaker]

class Action(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ACTION_UNSPECIFIED: _ClassVar[Action]
    ACTION_SIT: _ClassVar[Action]
    ACTION_WALK: _ClassVar[Action]
    ACTION_STAND: _ClassVar[Action]

class EventType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EVENT_TYPE_UNSPECIFIED: _ClassVar[EventType]
    EVENT_TYPE_SPEECH_START: _ClassVar[EventType]
    EVENT_TYPE_SPEECH_END: _ClassVar[EventType]
    EVENT_TYPE_INPUT_LATE: _ClassVar[EventType]
    EVENT_TYPE_FRAMES_DROPPED: _ClassVar[EventType]
    EVENT_TYPE_DEGRADED: _ClassVar[EventType]
    EVENT_TYPE_CONTROL_APPLIED: _ClassVar[EventType]
    EVENT_TYPE_DRAINING: _ClassVar[EventType]
SAMPLE_FORMAT_UNSPECIFIED: SampleFormat
SAMPLE_FORMAT_PCM_S16LE: SampleFormat
SAMPLE_FORMAT_F32LE: SampleFormat
CHANNEL_LAYOUT_UNSPECIFIED: ChannelLayout
CHANNEL_LAYOUT_MONO_PER_SPEAKER: ChannelLayout
CHANNEL_LAYOUT_STEREO: ChannelLayout
SPEAKER_UNSPECIFIED: Speaker
SPEAKER_A: Speaker
SPEAKER_B: Speaker
ACTION_UNSPECIFIED: Action
ACTION_SIT: Action
ACTION_WALK: Action
ACTION_STAND: Action
EVENT_TYPE_UNSPECIFIED: EventType
EVENT_TYPE_SPEECH_START: EventType
EVENT_TYPE_SPEECH_END: EventType
EVENT_TYPE_INPUT_LATE: EventType
EVENT_TYPE_FRAMES_DROPPED: EventType
EVENT_TYPE_DEGRADED: EventType
EVENT_TYPE_CONTROL_APPLIED: EventType
EVENT_TYPE_DRAINING: EventType

class ClientMessage(_message.Message):
    __slots__ = ("config", "audio", "control", "end_of_audio")
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    AUDIO_FIELD_NUMBER: _ClassVar[int]
    CONTROL_FIELD_NUMBER: _ClassVar[int]
    END_OF_AUDIO_FIELD_NUMBER: _ClassVar[int]
    config: SessionConfig
    audio: AudioChunk
    control: Control
    end_of_audio: EndOfAudio
    def __init__(self, config: _Optional[_Union[SessionConfig, _Mapping]] = ..., audio: _Optional[_Union[AudioChunk, _Mapping]] = ..., control: _Optional[_Union[Control, _Mapping]] = ..., end_of_audio: _Optional[_Union[EndOfAudio, _Mapping]] = ...) -> None: ...

class AudioFormat(_message.Message):
    __slots__ = ("sample_format", "sample_rate", "layout")
    SAMPLE_FORMAT_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_RATE_FIELD_NUMBER: _ClassVar[int]
    LAYOUT_FIELD_NUMBER: _ClassVar[int]
    sample_format: SampleFormat
    sample_rate: int
    layout: ChannelLayout
    def __init__(self, sample_format: _Optional[_Union[SampleFormat, str]] = ..., sample_rate: _Optional[int] = ..., layout: _Optional[_Union[ChannelLayout, str]] = ...) -> None: ...

class Placement(_message.Message):
    __slots__ = ("x", "z", "yaw")
    X_FIELD_NUMBER: _ClassVar[int]
    Z_FIELD_NUMBER: _ClassVar[int]
    YAW_FIELD_NUMBER: _ClassVar[int]
    x: float
    z: float
    yaw: float
    def __init__(self, x: _Optional[float] = ..., z: _Optional[float] = ..., yaw: _Optional[float] = ...) -> None: ...

class PersonConfig(_message.Message):
    __slots__ = ("style", "action")
    STYLE_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    style: str
    action: Action
    def __init__(self, style: _Optional[str] = ..., action: _Optional[_Union[Action, str]] = ...) -> None: ...

class StreamSettings(_message.Message):
    __slots__ = ("block_frames", "lookahead_frames", "steps", "seed", "alive")
    BLOCK_FRAMES_FIELD_NUMBER: _ClassVar[int]
    LOOKAHEAD_FRAMES_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    ALIVE_FIELD_NUMBER: _ClassVar[int]
    block_frames: int
    lookahead_frames: int
    steps: int
    seed: int
    alive: bool
    def __init__(self, block_frames: _Optional[int] = ..., lookahead_frames: _Optional[int] = ..., steps: _Optional[int] = ..., seed: _Optional[int] = ..., alive: _Optional[bool] = ...) -> None: ...

class Outputs(_message.Message):
    __slots__ = ("face", "body")
    FACE_FIELD_NUMBER: _ClassVar[int]
    BODY_FIELD_NUMBER: _ClassVar[int]
    face: bool
    body: bool
    def __init__(self, face: _Optional[bool] = ..., body: _Optional[bool] = ...) -> None: ...

class SessionConfig(_message.Message):
    __slots__ = ("audio", "person_a", "person_b", "placement", "settings", "outputs", "resume")
    AUDIO_FIELD_NUMBER: _ClassVar[int]
    PERSON_A_FIELD_NUMBER: _ClassVar[int]
    PERSON_B_FIELD_NUMBER: _ClassVar[int]
    PLACEMENT_FIELD_NUMBER: _ClassVar[int]
    SETTINGS_FIELD_NUMBER: _ClassVar[int]
    OUTPUTS_FIELD_NUMBER: _ClassVar[int]
    RESUME_FIELD_NUMBER: _ClassVar[int]
    audio: AudioFormat
    person_a: PersonConfig
    person_b: PersonConfig
    placement: Placement
    settings: StreamSettings
    outputs: Outputs
    resume: Resume
    def __init__(self, audio: _Optional[_Union[AudioFormat, _Mapping]] = ..., person_a: _Optional[_Union[PersonConfig, _Mapping]] = ..., person_b: _Optional[_Union[PersonConfig, _Mapping]] = ..., placement: _Optional[_Union[Placement, _Mapping]] = ..., settings: _Optional[_Union[StreamSettings, _Mapping]] = ..., outputs: _Optional[_Union[Outputs, _Mapping]] = ..., resume: _Optional[_Union[Resume, _Mapping]] = ...) -> None: ...

class Resume(_message.Message):
    __slots__ = ("start_frame", "first_frame", "root_a", "root_b", "previous_session_id")
    START_FRAME_FIELD_NUMBER: _ClassVar[int]
    FIRST_FRAME_FIELD_NUMBER: _ClassVar[int]
    ROOT_A_FIELD_NUMBER: _ClassVar[int]
    ROOT_B_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    start_frame: int
    first_frame: int
    root_a: Placement
    root_b: Placement
    previous_session_id: str
    def __init__(self, start_frame: _Optional[int] = ..., first_frame: _Optional[int] = ..., root_a: _Optional[_Union[Placement, _Mapping]] = ..., root_b: _Optional[_Union[Placement, _Mapping]] = ..., previous_session_id: _Optional[str] = ...) -> None: ...

class AudioChunk(_message.Message):
    __slots__ = ("speaker", "data")
    SPEAKER_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    speaker: Speaker
    data: bytes
    def __init__(self, speaker: _Optional[_Union[Speaker, str]] = ..., data: _Optional[bytes] = ...) -> None: ...

class Control(_message.Message):
    __slots__ = ("time", "speaker", "action", "style")
    TIME_FIELD_NUMBER: _ClassVar[int]
    SPEAKER_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    STYLE_FIELD_NUMBER: _ClassVar[int]
    time: float
    speaker: Speaker
    action: Action
    style: str
    def __init__(self, time: _Optional[float] = ..., speaker: _Optional[_Union[Speaker, str]] = ..., action: _Optional[_Union[Action, str]] = ..., style: _Optional[str] = ...) -> None: ...

class EndOfAudio(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ServerMessage(_message.Message):
    __slots__ = ("header", "frames", "event", "status")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    FRAMES_FIELD_NUMBER: _ClassVar[int]
    EVENT_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    header: StreamHeader
    frames: FrameBatch
    event: Event
    status: Status
    def __init__(self, header: _Optional[_Union[StreamHeader, _Mapping]] = ..., frames: _Optional[_Union[FrameBatch, _Mapping]] = ..., event: _Optional[_Union[Event, _Mapping]] = ..., status: _Optional[_Union[Status, _Mapping]] = ...) -> None: ...

class Joint(_message.Message):
    __slots__ = ("name", "parent", "offset", "rotation_order", "end_site")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PARENT_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    ROTATION_ORDER_FIELD_NUMBER: _ClassVar[int]
    END_SITE_FIELD_NUMBER: _ClassVar[int]
    name: str
    parent: int
    offset: _containers.RepeatedScalarFieldContainer[float]
    rotation_order: str
    end_site: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, name: _Optional[str] = ..., parent: _Optional[int] = ..., offset: _Optional[_Iterable[float]] = ..., rotation_order: _Optional[str] = ..., end_site: _Optional[_Iterable[float]] = ...) -> None: ...

class StreamHeader(_message.Message):
    __slots__ = ("session_id", "fps", "blendshape_names", "rotation_names", "joints", "units", "algorithmic_latency", "block_frames", "lookahead_frames", "context_frames", "steps", "model", "styles", "first_frame")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    FPS_FIELD_NUMBER: _ClassVar[int]
    BLENDSHAPE_NAMES_FIELD_NUMBER: _ClassVar[int]
    ROTATION_NAMES_FIELD_NUMBER: _ClassVar[int]
    JOINTS_FIELD_NUMBER: _ClassVar[int]
    UNITS_FIELD_NUMBER: _ClassVar[int]
    ALGORITHMIC_LATENCY_FIELD_NUMBER: _ClassVar[int]
    BLOCK_FRAMES_FIELD_NUMBER: _ClassVar[int]
    LOOKAHEAD_FRAMES_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FRAMES_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    STYLES_FIELD_NUMBER: _ClassVar[int]
    FIRST_FRAME_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    fps: float
    blendshape_names: _containers.RepeatedScalarFieldContainer[str]
    rotation_names: _containers.RepeatedScalarFieldContainer[str]
    joints: _containers.RepeatedCompositeFieldContainer[Joint]
    units: str
    algorithmic_latency: float
    block_frames: int
    lookahead_frames: int
    context_frames: int
    steps: int
    model: str
    styles: _containers.RepeatedScalarFieldContainer[str]
    first_frame: int
    def __init__(self, session_id: _Optional[str] = ..., fps: _Optional[float] = ..., blendshape_names: _Optional[_Iterable[str]] = ..., rotation_names: _Optional[_Iterable[str]] = ..., joints: _Optional[_Iterable[_Union[Joint, _Mapping]]] = ..., units: _Optional[str] = ..., algorithmic_latency: _Optional[float] = ..., block_frames: _Optional[int] = ..., lookahead_frames: _Optional[int] = ..., context_frames: _Optional[int] = ..., steps: _Optional[int] = ..., model: _Optional[str] = ..., styles: _Optional[_Iterable[str]] = ..., first_frame: _Optional[int] = ...) -> None: ...

class PersonFrame(_message.Message):
    __slots__ = ("blendshapes", "rotations", "root_position", "joint_rotations", "action", "speaking")
    BLENDSHAPES_FIELD_NUMBER: _ClassVar[int]
    ROTATIONS_FIELD_NUMBER: _ClassVar[int]
    ROOT_POSITION_FIELD_NUMBER: _ClassVar[int]
    JOINT_ROTATIONS_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    SPEAKING_FIELD_NUMBER: _ClassVar[int]
    blendshapes: _containers.RepeatedScalarFieldContainer[float]
    rotations: _containers.RepeatedScalarFieldContainer[float]
    root_position: _containers.RepeatedScalarFieldContainer[float]
    joint_rotations: _containers.RepeatedScalarFieldContainer[float]
    action: Action
    speaking: bool
    def __init__(self, blendshapes: _Optional[_Iterable[float]] = ..., rotations: _Optional[_Iterable[float]] = ..., root_position: _Optional[_Iterable[float]] = ..., joint_rotations: _Optional[_Iterable[float]] = ..., action: _Optional[_Union[Action, str]] = ..., speaking: _Optional[bool] = ...) -> None: ...

class Frame(_message.Message):
    __slots__ = ("index", "time_code", "a", "b")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    TIME_CODE_FIELD_NUMBER: _ClassVar[int]
    A_FIELD_NUMBER: _ClassVar[int]
    B_FIELD_NUMBER: _ClassVar[int]
    index: int
    time_code: float
    a: PersonFrame
    b: PersonFrame
    def __init__(self, index: _Optional[int] = ..., time_code: _Optional[float] = ..., a: _Optional[_Union[PersonFrame, _Mapping]] = ..., b: _Optional[_Union[PersonFrame, _Mapping]] = ...) -> None: ...

class FrameBatch(_message.Message):
    __slots__ = ("frames",)
    FRAMES_FIELD_NUMBER: _ClassVar[int]
    frames: _containers.RepeatedCompositeFieldContainer[Frame]
    def __init__(self, frames: _Optional[_Iterable[_Union[Frame, _Mapping]]] = ...) -> None: ...

class Event(_message.Message):
    __slots__ = ("type", "speaker", "time", "count", "message")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    SPEAKER_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    type: EventType
    speaker: Speaker
    time: float
    count: int
    message: str
    def __init__(self, type: _Optional[_Union[EventType, str]] = ..., speaker: _Optional[_Union[Speaker, str]] = ..., time: _Optional[float] = ..., count: _Optional[int] = ..., message: _Optional[str] = ...) -> None: ...

class Status(_message.Message):
    __slots__ = ("code", "message", "frames", "audio_seconds", "latency_p50", "latency_p95")
    class Code(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        CODE_UNSPECIFIED: _ClassVar[Status.Code]
        SUCCESS: _ClassVar[Status.Code]
        WARNING: _ClassVar[Status.Code]
    CODE_UNSPECIFIED: Status.Code
    SUCCESS: Status.Code
    WARNING: Status.Code
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    FRAMES_FIELD_NUMBER: _ClassVar[int]
    AUDIO_SECONDS_FIELD_NUMBER: _ClassVar[int]
    LATENCY_P50_FIELD_NUMBER: _ClassVar[int]
    LATENCY_P95_FIELD_NUMBER: _ClassVar[int]
    code: Status.Code
    message: str
    frames: int
    audio_seconds: float
    latency_p50: float
    latency_p95: float
    def __init__(self, code: _Optional[_Union[Status.Code, str]] = ..., message: _Optional[str] = ..., frames: _Optional[int] = ..., audio_seconds: _Optional[float] = ..., latency_p50: _Optional[float] = ..., latency_p95: _Optional[float] = ...) -> None: ...

class DescribeModelRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ModelDescription(_message.Message):
    __slots__ = ("model", "fps", "sample_rate", "blendshape_names", "rotation_names", "joints", "styles", "defaults", "context_frames", "backend", "manifest_json")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    FPS_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_RATE_FIELD_NUMBER: _ClassVar[int]
    BLENDSHAPE_NAMES_FIELD_NUMBER: _ClassVar[int]
    ROTATION_NAMES_FIELD_NUMBER: _ClassVar[int]
    JOINTS_FIELD_NUMBER: _ClassVar[int]
    STYLES_FIELD_NUMBER: _ClassVar[int]
    DEFAULTS_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FRAMES_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    MANIFEST_JSON_FIELD_NUMBER: _ClassVar[int]
    model: str
    fps: float
    sample_rate: int
    blendshape_names: _containers.RepeatedScalarFieldContainer[str]
    rotation_names: _containers.RepeatedScalarFieldContainer[str]
    joints: _containers.RepeatedCompositeFieldContainer[Joint]
    styles: _containers.RepeatedScalarFieldContainer[str]
    defaults: StreamSettings
    context_frames: int
    backend: str
    manifest_json: str
    def __init__(self, model: _Optional[str] = ..., fps: _Optional[float] = ..., sample_rate: _Optional[int] = ..., blendshape_names: _Optional[_Iterable[str]] = ..., rotation_names: _Optional[_Iterable[str]] = ..., joints: _Optional[_Iterable[_Union[Joint, _Mapping]]] = ..., styles: _Optional[_Iterable[str]] = ..., defaults: _Optional[_Union[StreamSettings, _Mapping]] = ..., context_frames: _Optional[int] = ..., backend: _Optional[str] = ..., manifest_json: _Optional[str] = ...) -> None: ...
