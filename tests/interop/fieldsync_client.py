"""A small fieldsync client in Python, written from docs/protocol.md only.

Uses nothing but Debian's python3-grpcio, python3-protobuf and python3-cryptography, and
Python classes that protoc --python_out makes from the repository's .proto files into a
temporary directory (compile_protos). No fieldsync C++ code, no generated gRPC stubs: every
call goes through grpc.Channel.unary_unary / unary_stream with the message classes.

What a client needs and this module provides:
  - DeviceKey: an Ed25519 key; sign(bytes) is the 64-byte detached signature;
  - Device: enrolled identity (device_id, token), its next device_seq, its HLC, and
    signed(event) which encodes the Event ONCE and signs exactly those bytes;
  - chain_hash: SHA-256(prev_hash || offset as 8 bytes big-endian || record);
  - Replica: local state built from Pull alone (snapshot, LogEntry records, conflicts).
"""

import hashlib
import os
import shutil
import struct
import subprocess
import sys
import time
import uuid

ZERO_HASH = b"\0" * 32


def compile_protos(proto_dir, out_dir):
    """protoc --python_out for every fieldsync/v1/*.proto under proto_dir; imports them."""
    protoc = shutil.which("protoc")
    if protoc is None:
        raise RuntimeError("protoc (protobuf-compiler) not installed")
    sources = sorted(
        os.path.join("fieldsync", "v1", name)
        for name in os.listdir(os.path.join(proto_dir, "fieldsync", "v1"))
        if name.endswith(".proto"))
    os.makedirs(out_dir, exist_ok=True)
    subprocess.run([protoc, "-I" + proto_dir, "--python_out=" + out_dir] + sources, check=True)
    if out_dir not in sys.path:
        sys.path.insert(0, out_dir)
    import importlib
    modules = {}
    for source in sources:
        name = os.path.splitext(os.path.basename(source))[0]
        modules[name] = importlib.import_module("fieldsync.v1.%s_pb2" % name)
    return Protos(modules)


class Protos:
    """Every message and enum of fieldsync.v1 by its short name (pb.Event, pb.ROLE_CADRE)."""

    def __init__(self, modules):
        self.modules = modules
        for module in modules.values():
            for key, value in vars(module).items():
                if not key.startswith("_"):
                    setattr(self, key, value)

    def service(self, name):
        for module in self.modules.values():
            if name in module.DESCRIPTOR.services_by_name:
                return module.DESCRIPTOR.services_by_name[name]
        raise KeyError("no service %s in the protos" % name)

    def has_method(self, service, method):
        try:
            return method in self.service(service).methods_by_name
        except KeyError:
            return False


def message_class(descriptor):
    from google.protobuf import message_factory
    if hasattr(message_factory, "GetMessageClass"):
        return message_factory.GetMessageClass(descriptor)
    return message_factory.MessageFactory(descriptor.file.pool).GetPrototype(descriptor)


class Api:
    """Calls any fieldsync.v1 RPC by name, with a bearer token."""

    def __init__(self, pb, channel):
        self.pb = pb
        self.channel = channel

    def _method(self, service, name):
        method = self.pb.service(service).methods_by_name[name]
        return method, message_class(method.input_type), message_class(method.output_type)

    def call(self, service, name, request, token=None, timeout=20):
        method, _, response_class = self._method(service, name)
        path = "/fieldsync.v1.%s/%s" % (service, name)
        metadata = [("authorization", "Bearer " + token)] if token else None
        if method.server_streaming:
            stub = self.channel.unary_stream(path, request_serializer=lambda m: m.SerializeToString(),
                                             response_deserializer=response_class.FromString)
            return stub(request, metadata=metadata, timeout=timeout)
        stub = self.channel.unary_unary(path, request_serializer=lambda m: m.SerializeToString(),
                                        response_deserializer=response_class.FromString)
        return stub(request, metadata=metadata, timeout=timeout)

    def call_with_call(self, service, name, request, token=None, timeout=20):
        """Like call, for unary RPCs, but also returns the grpc.Call (trailers)."""
        _, _, response_class = self._method(service, name)
        stub = self.channel.unary_unary("/fieldsync.v1.%s/%s" % (service, name),
                                        request_serializer=lambda m: m.SerializeToString(),
                                        response_deserializer=response_class.FromString)
        metadata = [("authorization", "Bearer " + token)] if token else None
        return stub.with_call(request, metadata=metadata, timeout=timeout)

    def request(self, service, name, **fields):
        return self._method(service, name)[1](**fields)


class DeviceKey:
    """An Ed25519 device key (python3-cryptography)."""

    def __init__(self, seed=None):
        from cryptography.hazmat.primitives.asymmetric import ed25519
        self.seed = seed if seed is not None else os.urandom(32)
        self._private = ed25519.Ed25519PrivateKey.from_private_bytes(self.seed)

    def public_key(self):
        from cryptography.hazmat.primitives import serialization
        return self._private.public_key().public_bytes(serialization.Encoding.Raw,
                                                       serialization.PublicFormat.Raw)

    def sign(self, data):
        return self._private.sign(data)


def verify_signature(public_key, data, signature):
    """True if `signature` is public_key's Ed25519 signature over exactly `data`."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric import ed25519
    try:
        ed25519.Ed25519PublicKey.from_public_bytes(public_key).verify(signature, data)
        return True
    except InvalidSignature:
        return False


def chain_hash(prev_hash, offset, record):
    """The log's hash of one record: SHA-256(prev_hash || offset u64 big-endian || record)."""
    return hashlib.sha256(prev_hash + struct.pack(">Q", offset) + record).digest()


def hlc_now(last=0, wall_ms=None):
    """A hybrid logical clock value above `last`: 48-bit unix ms << 16 | 16-bit counter."""
    ms = int(time.time() * 1000) if wall_ms is None else wall_ms
    candidate = ms << 16
    return candidate if candidate > last else last + 1


def new_id():
    return str(uuid.uuid4())


class Device:
    """An enrolled device: makes, encodes once and signs its events, in device_seq order."""

    def __init__(self, pb, api, key, enrolled):
        self.pb = pb
        self.api = api
        self.key = key
        self.device_id = enrolled.device_id
        self.token = enrolled.token
        self.user_id = enrolled.user_id
        self.role = enrolled.role
        self.next_seq = 1
        self.hlc = 0

    @classmethod
    def enroll(cls, pb, api, code, key=None, model="python3-grpcio"):
        key = key or DeviceKey()
        enrolled = api.call("SyncService", "Enroll", pb.EnrollRequest(
            code=code, ed25519_public_key=key.public_key(), device_model=model))
        return cls(pb, api, key, enrolled)

    def event(self, subject_kind, subject_id, area_code, **body):
        """A new Event with the envelope filled and the next device_seq."""
        self.hlc = hlc_now(self.hlc)
        event = self.pb.Event(event_id=new_id(), device_id=self.device_id,
                              device_seq=self.next_seq, hlc=self.hlc,
                              subject=self.pb.SubjectRef(kind=subject_kind, id=subject_id),
                              area_code=area_code, **body)
        event.device_time.GetCurrentTime()
        self.next_seq += 1
        return event

    def signed(self, event):
        """Encodes `event` once and signs exactly those bytes."""
        data = event.SerializeToString()
        return self.pb.SignedEvent(event=data, signature=self.key.sign(data))

    def push(self, signed_events):
        return self.api.call("SyncService", "Push",
                             self.pb.PushRequest(events=list(signed_events)), token=self.token)


def outcome(result):
    """The name of a PushResult's outcome: accepted, duplicate, conflict_recorded, held, or the
    rejection code's name (REJECTION_CODE_BAD_SIGNATURE ...)."""
    which = result.WhichOneof("outcome")
    if which == "rejected":
        return result.DESCRIPTOR.file.pool.FindEnumTypeByName(
            "fieldsync.v1.RejectionCode").values_by_number[result.rejected.code].name
    return which or "none"


def log_entries(message):
    """The LogEntry list of a PullResponse or EventBatch, whatever the field is called."""
    for field in message.DESCRIPTOR.fields:
        if (field.message_type is not None and field.message_type.full_name ==
                "fieldsync.v1.LogEntry"):
            return list(getattr(message, field.name))
    raise KeyError("%s carries no LogEntry" % message.DESCRIPTOR.full_name)


class Replica:
    """A client's local state built only from what Pull returns: households (with their
    versioned fields), open conflicts, the cursor. apply() follows docs/protocol.md."""

    def __init__(self, pb):
        self.pb = pb
        self.cursor = None
        self.households = {}   # id -> {"last_offset": n, "fields": {name: (version, FieldValue)}}
        self.conflicts = {}    # id -> Conflict (open ones)
        self.resets = 0
        self.last_reset_reason = None

    def _household(self, household_id):
        return self.households.setdefault(household_id, {"last_offset": 0, "fields": {}})

    def apply_snapshot(self, snapshot):
        for household in snapshot.households:
            local = self._household(household.id)
            local["last_offset"] = max(local["last_offset"], household.last_offset)
            for name, versioned in household.fields.items():
                local["fields"][name] = (versioned.version, versioned.value)
        for conflict in snapshot.conflicts:
            if conflict.open:
                self.conflicts[conflict.id] = conflict
            else:
                self.conflicts.pop(conflict.id, None)

    def _body_values(self, event):
        """The values an event's body gives its fields by name (a write's value when the
        WriteOutcome carries none)."""
        pb = self.pb
        body = event.WhichOneof("body")
        values = {}
        if body == "household_fields_set":
            for patch in event.household_fields_set.patches:
                values[patch.field] = patch.value
        elif body == "household_registered":
            registered = event.household_registered
            values["head_name"] = pb.FieldValue(string_value=registered.head_name)
            values["head_id_number"] = pb.FieldValue(string_value=registered.head_id_number)
            if registered.HasField("location"):
                values["location"] = pb.FieldValue(location_value=registered.location)
            for name, value in registered.fields.items():
                values[name] = value
        return values

    def apply_entry(self, entry):
        """Applies one LogEntry: the server's WriteOutcomes decide, the client merges nothing."""
        stored = self.pb.StoredEvent.FromString(entry.record)
        if not stored.event:
            return  # a record without an event never travels; harmless if it did
        event = self.pb.Event.FromString(stored.event)
        body_values = self._body_values(event)
        for write in stored.writes:
            if write.entity.kind != self.pb.SUBJECT_KIND_HOUSEHOLD:
                continue
            local = self._household(write.entity.id)
            if entry.offset <= local["last_offset"]:
                continue  # the snapshot already reflects it
            if write.result == self.pb.WRITE_RESULT_LOST:
                continue  # kept in the conflict, not the current value
            value = None
            if write.DESCRIPTOR.oneofs_by_name.get("value") and write.HasField("value"):
                value = getattr(write, write.WhichOneof("value"))
            elif write.field in body_values:
                value = body_values[write.field]
            if value is not None:
                local["fields"][write.field] = (write.version, value)
        if event.subject.kind == self.pb.SUBJECT_KIND_HOUSEHOLD:
            local = self._household(event.subject.id)
            local["last_offset"] = max(local["last_offset"], entry.offset)

    def pull(self, api, token, max_events=0):
        """Pulls until more = false; returns the number of pages."""
        pages = 0
        while True:
            request = self.pb.PullRequest(max_events=max_events)
            if self.cursor is not None:
                request.cursor.CopyFrom(self.cursor)
            response = api.call("SyncService", "Pull", request, token=token)
            pages += 1
            if response.HasField("reset"):
                self.resets += 1
                self.last_reset_reason = response.reset.reason
                self.households.clear()
                self.conflicts.clear()
            if response.HasField("snapshot"):
                self.apply_snapshot(response.snapshot)
            for entry in log_entries(response):
                self.apply_entry(entry)
            for conflict in conflict_records(response):
                if conflict.open:
                    self.conflicts[conflict.id] = conflict
                else:
                    self.conflicts.pop(conflict.id, None)
            for gone in response.removed_from_scope:
                self.households.pop(gone.id, None)
            self.cursor = response.checkpoint
            if not response.more:
                return pages
            if pages > 1000:
                raise RuntimeError("Pull did not finish in 1000 pages")

    def field(self, household_id, name):
        return self.households.get(household_id, {"fields": {}})["fields"].get(name)


def conflict_records(response):
    """Conflict records an incremental PullResponse carries (outside the snapshot)."""
    found = []
    for field in response.DESCRIPTOR.fields:
        if (field.message_type is not None and field.message_type.full_name ==
                "fieldsync.v1.Conflict" and field.label == field.LABEL_REPEATED):
            found.extend(getattr(response, field.name))
    return found


def error_detail(pb, rpc_error):
    """The ErrorDetail a RESOURCE_EXHAUSTED carries in the trailer fieldsync-error-bin, or None."""
    for key, value in rpc_error.trailing_metadata() or ():
        if key == "fieldsync-error-bin":
            return pb.ErrorDetail.FromString(value)
    return None
