#!/usr/bin/python3
"""Generates tests/vectors/golden_vectors.json, deterministically (see README.md).

Usage:
  generate_vectors.py PROTO_DIR [OUT.json]   write the vectors (default: next to this script)
  generate_vectors.py PROTO_DIR --check      recompute and compare with the checked-in file;
                                             exit 0 if equal, 1 (with the first difference) if not

Needs python3-protobuf, python3-cryptography and protoc. Ed25519 signatures are deterministic
(RFC 8032), so the same seed and bytes give the same file on every run.
"""

import hashlib
import json
import os
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "interop"))
import fieldsync_client as fc  # noqa: E402

SEED = hashlib.sha256(b"fieldsync golden vectors: device key 1").digest()
DEVICE_ID = "dev-golden-0001"
ACTOR = "cadre-golden"
VILLAGE = "620102001001"
HOUSEHOLD_A = "6a0b8a7e-2f1c-4d3e-9b5a-0c1d2e3f4a01"
# 2026-12-01 08:00:00 UTC and on; whole seconds on purpose (nanos 0 is not written).
T0 = 1796112000


def varint(value):
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def length_delimited(number, data):
    return varint(number << 3 | 2) + varint(len(data)) + data


def stored_record(pb, event_bytes, signature, received_seconds, writes):
    """The server's record of an accepted event (StoredEvent), in field-number order:
    1 event (bytes, verbatim), 3 received_at, 4 actor, 10 writes, 11 signature.
    Encoded by hand so that it does not depend on which StoredEvent the local protos have."""
    from google.protobuf import timestamp_pb2
    record = length_delimited(1, event_bytes)
    record += length_delimited(3, timestamp_pb2.Timestamp(seconds=received_seconds)
                               .SerializeToString())
    record += length_delimited(4, ACTOR.encode())
    for write in writes:
        record += length_delimited(10, write.SerializeToString())
    record += length_delimited(11, signature)
    return record


def make_events(pb):
    def envelope(seq, event_id, subject, seconds):
        event = pb.Event(event_id=event_id, device_id=DEVICE_ID, device_seq=seq,
                         hlc=(seconds * 1000) << 16,
                         subject=pb.SubjectRef(kind=pb.SUBJECT_KIND_HOUSEHOLD, id=subject),
                         area_code=VILLAGE)
        event.device_time.seconds = seconds
        return event

    visit = envelope(2, "0f5c2b9e-7d41-4c8a-a1e3-5b6c7d8e9f02", HOUSEHOLD_A, T0 + 3600)
    visit.location.lat = 36.0611
    visit.location.lng = 103.8343
    visit.location.accuracy_m = 12.5
    body = visit.visit_recorded
    body.start_time.seconds = T0
    body.end_time.seconds = T0 + 2700
    body.purpose = pb.VISIT_PURPOSE_ROUTINE
    body.notes = "入户走访，了解春耕和务工情况。"
    body.household_confirmed = True
    body.confirmer_name = "王建国"

    patch = envelope(3, "0f5c2b9e-7d41-4c8a-a1e3-5b6c7d8e9f03", HOUSEHOLD_A, T0 + 3660)
    patch.household_fields_set.patches.add(
        field="phone", value=pb.FieldValue(string_value="13893100001"), base_version=0)

    register = envelope(1, "0f5c2b9e-7d41-4c8a-a1e3-5b6c7d8e9f01", HOUSEHOLD_A, T0 - 600)
    body = register.household_registered
    body.household_number = "6201020010010002"
    body.head_name = "李秀兰"
    body.head_id_number = "620102197506080016"
    body.initial_status = pb.HOUSEHOLD_STATUS_IDENTIFIED

    household = pb.SubjectRef(kind=pb.SUBJECT_KIND_HOUSEHOLD, id=HOUSEHOLD_A)
    writes = [
        [pb.WriteOutcome(entity=household, field=name, version=1, result=pb.WRITE_RESULT_APPLIED)
         for name in ("head_name", "head_id_number")],
        [],
        [pb.WriteOutcome(entity=household, field="phone", version=1,
                         result=pb.WRITE_RESULT_APPLIED)],
    ]
    # In device_seq order: the household is registered, visited, then its phone set.
    return [("household_registration", register), ("visit", visit), ("field_patch", patch)], writes


def generate(proto_dir):
    from google.protobuf import text_format
    with tempfile.TemporaryDirectory(prefix="fieldsync_vectors_") as out:
        pb = fc.compile_protos(proto_dir, out)
        key = fc.DeviceKey(SEED)
        events, writes = make_events(pb)
        vectors = {
            "comment": "fieldsync golden vectors; see tests/vectors/README.md. All bytes hex.",
            "key": {"seed": SEED.hex(), "public_key": key.public_key().hex()},
            "device_id": DEVICE_ID,
            "events": [],
            "log": [],
        }
        prev = fc.ZERO_HASH
        for offset, ((name, event), event_writes) in enumerate(zip(events, writes), start=1):
            data = event.SerializeToString()
            signature = key.sign(data)
            vectors["events"].append({
                "name": name,
                "text": text_format.MessageToString(event, as_utf8=True),
                "event": data.hex(),
                "signature": signature.hex(),
            })
            record = stored_record(pb, data, signature, T0 + 3600 + 60 * offset, event_writes)
            digest = fc.chain_hash(prev, offset, record)
            vectors["log"].append({"offset": offset, "prev_hash": prev.hex(),
                                   "hash": digest.hex(), "record": record.hex()})
            prev = digest
        return vectors


def main():
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    vectors = generate(sys.argv[1])
    text = json.dumps(vectors, indent=2, ensure_ascii=False) + "\n"
    target = os.path.join(HERE, "golden_vectors.json")
    if len(sys.argv) > 2 and sys.argv[2] == "--check":
        with open(target, encoding="utf-8") as f:
            existing = f.read()
        if existing != text:
            for number, (a, b) in enumerate(zip(existing.splitlines(), text.splitlines()), 1):
                if a != b:
                    print("golden_vectors.json line %d differs:\n  file: %s\n  now:  %s"
                          % (number, a, b), file=sys.stderr)
                    break
            else:
                print("golden_vectors.json differs in length", file=sys.stderr)
            return 1
        print("golden_vectors.json matches")
        return 0
    if len(sys.argv) > 2:
        target = sys.argv[2]
    with open(target, "w", encoding="utf-8") as f:
        f.write(text)
    print("wrote " + target)
    return 0


if __name__ == "__main__":
    sys.exit(main())
