#!/usr/bin/python3
"""A client we did not write drives a real fieldsyncd: Python, from docs/protocol.md.

Only Debian's python3-grpcio, python3-protobuf and python3-cryptography; the messages come
from protoc --python_out of the repository's protos, compiled into a temp dir at test time
(tests/interop/fieldsync_client.py). No fieldsync C++ code. Against fieldsyncd on
127.0.0.1:0 with a fresh data dir, the test:

  1. checks health and reflection (the services are listed);
  2. sets the world up as docs/protocol.md says, in order: areas with villages, a unit,
     users (two cadres, a township staff member, an HQ analyst), village links for the
     cadres, enrollment codes; then Enroll with keys made in Python;
  3. recomputes the golden vectors (tests/vectors/) and compares them with the file;
  4. pushes as a cadre: a household registration (encoded once, those bytes signed), the
     same signed bytes again (Duplicate, same offset), a gap (Held per event naming the
     expected device_seq, then the resend is accepted), a bad signature in the middle of
     a batch (before: accepted; it: BAD_SIGNATURE; behind it: Held), then the fix;
  5. makes a conflict between the two cadres' devices (the same field from base 0), has
     the township staff resolve it, and checks that both cadres' replicas, built only from
     what Pull returns (snapshot, LogEntry records' WriteOutcomes, conflicts), converge on
     the resolved value with no open conflict; an invented cursor answers
     RESET(UNKNOWN_CURSOR) and the rebuilt replica is the same;
  6. subscribes with the HQ token and verifies, from the bytes received, every record's
     hash, the chain where offsets are consecutive, and every event's signature;
  7. fetches SyncService.GetSchema (schema, version, limits) and pushes one event more than
     its max_push_events: RESOURCE_EXHAUSTED with the ErrorDetail "make it smaller";
  8. stops the server with SIGTERM (exit status 0).

Usage: foreign_client_test.py FIELDSYNCD PROTO_ROOT
  PROTO_ROOT is tests/proto (the health and reflection protos); the fieldsync protos are
  read from ../../proto relative to this script.
Exit 0 if everything holds, 1 on any failure (protos without fieldsync.v1.SignedEvent
included: the signed-bytes contract is what this client implements).
"""

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)
import fieldsync_client as fc  # noqa: E402

AREAS_CSV = (
    "code,parent,level,name\n"
    "620000000000,,province,甘肃省\n"
    "620100000000,620000000000,city,兰州市\n"
    "620102000000,620100000000,county,城关区\n"
    "620102001000,620102000000,township,甲乡\n"
    "620102001001,620102001000,village,一村\n"
    "620102001002,620102001000,village,二村\n")
TOWNSHIP = "620102001"
VILLAGE = "620102001001"


class Failure(Exception):
    pass


def check(condition, message):
    if not condition:
        raise Failure(message)


def main():
    if len(sys.argv) != 3:
        print("usage: foreign_client_test.py FIELDSYNCD PROTO_ROOT", file=sys.stderr)
        return 1
    fieldsyncd, proto_root = sys.argv[1], sys.argv[2]
    try:
        import grpc  # noqa: F401
        from google.protobuf import descriptor_pb2  # noqa: F401
        import cryptography  # noqa: F401
    except ImportError as error:
        # deploy/install-deps.sh installs them: their absence is a broken setup.
        print("FAIL: python3-grpcio / python3-protobuf / python3-cryptography missing: %s"
              % error, file=sys.stderr)
        return 1
    started = time.monotonic()
    work = tempfile.mkdtemp(prefix="fieldsync_foreign_client_")
    server = None
    log_path = None
    try:
        pb = fc.compile_protos(os.path.join(REPO, "proto"), os.path.join(work, "py"))
        if not hasattr(pb, "SignedEvent"):
            raise Failure("proto/fieldsync/v1 has no SignedEvent: the tree lacks the signed-bytes contract")
        stubs = os.path.join(work, "stubs")
        os.makedirs(stubs)
        # Under names of their own: their module path must not fall inside the "grpc" package.
        for source, target in (("grpc/health/v1/health.proto", "foreign_health.proto"),
                               ("grpc/reflection/v1alpha/reflection.proto",
                                "foreign_reflection.proto")):
            shutil.copy(os.path.join(proto_root, source), os.path.join(stubs, target))
        subprocess.run(["protoc", "-I" + stubs, "--python_out=" + stubs, "foreign_health.proto",
                        "foreign_reflection.proto"], check=True)
        sys.path.insert(0, stubs)

        data_dir = os.path.join(work, "data")
        log_path = os.path.join(work, "fieldsyncd.log")
        log = open(log_path, "w")
        server = subprocess.Popen(
            [fieldsyncd, "--data_dir=" + data_dir, "--listen=127.0.0.1:0",
             "--metrics_listen=off"], stdout=subprocess.PIPE, stderr=log, text=True)
        port = None
        for line in server.stdout:
            match = re.match(r"fieldsyncd listening on [^ ]+:(\d+)\s*$", line)
            if match:
                port = int(match.group(1))
                break
        check(port is not None, "fieldsyncd did not say where it listens")
        with open(os.path.join(data_dir, "admin-token")) as f:
            admin_token = f.read().strip()
        Scenario(pb, "127.0.0.1:%d" % port, admin_token, data_dir).run()

        server.send_signal(signal.SIGTERM)
        status = server.wait(timeout=30)
        server = None
        check(status == 0, "fieldsyncd exited with %d after SIGTERM" % status)
        print("PASS: the Python client (enroll, sign bytes, push, duplicate, gap, bad signature, "
              "conflict, resolve, converge, chain and signatures from Subscribe, GetSchema) "
              "in %.1f s" % (time.monotonic() - started))
        return 0
    except Failure as failure:
        print("FAIL: %s" % failure, file=sys.stderr)
        if log_path and os.path.exists(log_path):
            with open(log_path) as f:
                print("fieldsyncd's last log lines:\n" + "".join(f.readlines()[-30:]),
                      file=sys.stderr)
        return 1
    finally:
        if server is not None:
            server.kill()
            server.wait()
        shutil.rmtree(work, ignore_errors=True)


class Scenario:
    def __init__(self, pb, address, admin_token, data_dir):
        import grpc
        self.grpc = grpc
        self.pb = pb
        self.channel = grpc.insecure_channel(address)
        grpc.channel_ready_future(self.channel).result(timeout=30)
        self.api = fc.Api(pb, self.channel)
        self.admin = admin_token
        self.data_dir = data_dir
        self.keys = {}  # device_id -> public key, for verifying what Subscribe returns

    def run(self):
        self.health_and_reflection()
        self.golden_vectors()
        self.set_up()
        household = self.pushes()
        self.conflict_and_convergence(household)
        self.chain_and_signatures()
        self.schema()
        self.channel.close()

    # 1.
    def health_and_reflection(self):
        import foreign_health_pb2 as health_pb2
        import foreign_reflection_pb2 as reflection_pb2
        check_health = self.channel.unary_unary(
            "/grpc.health.v1.Health/Check",
            request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
            response_deserializer=health_pb2.HealthCheckResponse.FromString)
        health = check_health(health_pb2.HealthCheckRequest(), timeout=10)
        check(health.status == health_pb2.HealthCheckResponse.SERVING, "health: %s" % health)
        reflect = self.channel.stream_stream(
            "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
            request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
            response_deserializer=reflection_pb2.ServerReflectionResponse.FromString)
        answers = list(reflect(iter([reflection_pb2.ServerReflectionRequest(list_services="")]),
                               timeout=10))
        services = {s.name for s in answers[0].list_services_response.service}
        for wanted in ("fieldsync.v1.SyncService", "fieldsync.v1.AdminService",
                       "fieldsync.v1.StreamService", "grpc.health.v1.Health"):
            check(wanted in services, "reflection does not list %s" % wanted)

    # 2.
    def admin_call(self, name, **fields):
        return self.api.call("AdminService", name, self.api.request("AdminService", name, **fields),
                             token=self.admin)

    def set_up(self):
        pb = self.pb
        imported = self.admin_call("ImportAreas", csv=AREAS_CSV.encode())
        check(not imported.errors, "ImportAreas: %s" % imported.errors)
        self.admin_call("UpsertUnit", unit=pb.Unit(id="U1", name="省扶贫办 (python)",
                                                   area_code="620102001000"))
        users = [("cadre1", pb.ROLE_CADRE, []), ("cadre2", pb.ROLE_CADRE, []),
                 ("town1", pb.ROLE_TOWNSHIP_STAFF, [TOWNSHIP]), ("hq1", pb.ROLE_HQ_ANALYST, [])]
        for user_id, role, scope in users:
            user = pb.User(id=user_id, name=user_id, role=role, scope_area_codes=scope)
            if role == pb.ROLE_CADRE:
                user.rank = pb.CADRE_RANK_OTHER
                user.unit_id = "U1"
            self.admin_call("UpsertUser", user=user)
        for cadre in ("cadre1", "cadre2"):
            self.admin_call("StartLink", link_id="L-" + cadre, cadre_id=cadre,
                            target=pb.SubjectRef(kind=pb.SUBJECT_KIND_VILLAGE, id=VILLAGE),
                            role=pb.LINK_ROLE_VILLAGE_CADRE)
        self.devices = {}
        for user_id, _, _ in users:
            code = self.admin_call("IssueEnrollmentCode", user_id=user_id)
            device = fc.Device.enroll(pb, self.api, code.code)
            check(device.user_id == user_id and device.token, "Enroll answered %s" % user_id)
            self.devices[user_id] = device
            self.keys[device.device_id] = device.key.public_key()
        try:
            self.api.call("SyncService", "Pull", pb.PullRequest())
            raise Failure("Pull without a token succeeded")
        except self.grpc.RpcError as error:
            check(error.code() == self.grpc.StatusCode.UNAUTHENTICATED,
                  "Pull without a token: %s" % error.code())

    # 3.
    def golden_vectors(self):
        result = subprocess.run(
            [sys.executable, os.path.join(REPO, "tests", "vectors", "generate_vectors.py"),
             os.path.join(REPO, "proto"), "--check"], capture_output=True, text=True)
        check(result.returncode == 0, "golden vectors: %s" % result.stderr.strip())

    # 4.
    def expect(self, response, wanted, what):
        got = [fc.outcome(r) for r in response.results]
        check(got == wanted, "%s: outcomes %s, want %s" % (what, got, wanted))

    def pushes(self):
        pb = self.pb
        cadre = self.devices["cadre1"]
        household = fc.new_id()
        register = cadre.event(
            pb.SUBJECT_KIND_HOUSEHOLD, household, VILLAGE,
            household_registered=pb.HouseholdRegistered(
                household_number="6201020010010001", head_name="王建国",
                head_id_number="620102198003120025",
                initial_status=pb.HOUSEHOLD_STATUS_IDENTIFIED))
        signed = cadre.signed(register)
        first = cadre.push([signed])
        self.expect(first, ["accepted"], "registration")
        offset = first.results[0].accepted.offset
        again = cadre.push([signed])
        self.expect(again, ["duplicate"], "the same signed bytes again")
        check(again.results[0].duplicate.original_offset == offset,
              "duplicate names offset %d, want %d" % (again.results[0].duplicate.original_offset,
                                                      offset))

        def visit(note):
            from google.protobuf import timestamp_pb2
            start = timestamp_pb2.Timestamp()
            start.GetCurrentTime()
            start.seconds -= 3600
            end = timestamp_pb2.Timestamp(seconds=start.seconds + 1800)
            return cadre.event(pb.SUBJECT_KIND_HOUSEHOLD, household, VILLAGE,
                               visit_recorded=pb.VisitRecorded(
                                   start_time=start, end_time=end,
                                   purpose=pb.VISIT_PURPOSE_ROUTINE, notes=note))

        # A gap: seq 2 is made but not sent; seq 3 alone is held, naming 2.
        v2, v3 = visit("第二次走访"), visit("第三次走访")
        s2, s3 = cadre.signed(v2), cadre.signed(v3)
        gap = cadre.push([s3])
        self.expect(gap, ["held"], "a gap")
        check(gap.results[0].held.expected_device_seq == 2,
              "held expects %d, want 2" % gap.results[0].held.expected_device_seq)
        check(gap.next_expected_seq[cadre.device_id] == 2, "next_expected_seq after the gap")
        self.expect(cadre.push([s2, s3]), ["accepted", "accepted"], "resend from seq 2")

        # A bad signature in the middle of a batch.
        v4, v5, v6 = visit("4"), visit("5"), visit("6")
        s4, s5, s6 = cadre.signed(v4), cadre.signed(v5), cadre.signed(v6)
        bad = pb.SignedEvent(event=s5.event, signature=bytes([s5.signature[0] ^ 1]) +
                             s5.signature[1:])
        mixed = cadre.push([s4, bad, s6])
        self.expect(mixed, ["accepted", "REJECTION_CODE_BAD_SIGNATURE", "held"],
                    "good, bad signature, behind it")
        check(mixed.results[1].rejected.field == "signature",
              "BAD_SIGNATURE names field %r" % mixed.results[1].rejected.field)
        check(mixed.results[2].held.expected_device_seq == 5,
              "held behind the bad signature expects %d, want 5"
              % mixed.results[2].held.expected_device_seq)
        self.expect(cadre.push([s5, s6]), ["accepted", "accepted"], "resend from seq 5")
        return household

    # 5.
    def conflict_and_convergence(self, household):
        pb = self.pb
        cadre1, cadre2, town = (self.devices[u] for u in ("cadre1", "cadre2", "town1"))
        replicas = {name: fc.Replica(pb) for name in ("cadre1", "cadre2", "town1")}
        for name, replica in replicas.items():
            replica.pull(self.api, self.devices[name].token)
            check(household in replica.households, "%s's first pull lacks the household" % name)
            check(replica.field(household, "head_name") is not None,
                  "%s's snapshot lacks head_name" % name)

        def patch(device, phone):
            return device.signed(device.event(
                pb.SUBJECT_KIND_HOUSEHOLD, household, VILLAGE,
                household_fields_set=pb.HouseholdFieldsSet(patches=[pb.FieldPatch(
                    field="phone", value=pb.FieldValue(string_value=phone), base_version=0)])))

        self.expect(cadre1.push([patch(cadre1, "13893100001")]), ["accepted"], "first phone")
        second = cadre2.push([patch(cadre2, "13993100002")])
        self.expect(second, ["conflict_recorded"], "concurrent phone from base 0")
        conflict_ids = list(second.results[0].conflict_recorded.conflict_ids)
        check(len(conflict_ids) == 1, "conflict ids %s" % conflict_ids)

        replicas["town1"].pull(self.api, town.token)
        check(conflict_ids[0] in replicas["town1"].conflicts,
              "the township's pull does not carry the open conflict")
        chosen = "13893100009"
        resolve = town.signed(town.event(
            pb.SUBJECT_KIND_HOUSEHOLD, household, VILLAGE,
            conflict_resolved=pb.ConflictResolved(
                conflict_id=conflict_ids[0], value=pb.FieldValue(string_value=chosen),
                note="核实后以户主手机为准")))
        self.expect(town.push([resolve]), ["accepted"], "resolution by township staff")

        for name, replica in replicas.items():
            replica.pull(self.api, self.devices[name].token)
            value = replica.field(household, "phone")
            check(value is not None and value[1].string_value == chosen,
                  "%s's replica has phone %s, want %s" % (name, value, chosen))
            check(conflict_ids[0] not in replica.conflicts,
                  "%s's replica still has the conflict open" % name)
        # An invented cursor: RESET(UNKNOWN_CURSOR) and a snapshot; the replica is rebuilt.
        invented = fc.Replica(pb)
        invented.cursor = pb.Checkpoint(offset=3, scope_digest=b"\x07" * 32)
        invented.pull(self.api, cadre1.token)
        check(invented.resets == 1 and
              invented.last_reset_reason == pb.RESET_REASON_UNKNOWN_CURSOR,
              "an invented cursor answered reset %s, want RESET_REASON_UNKNOWN_CURSOR"
              % invented.last_reset_reason)
        check(invented.field(household, "phone") == replicas["cadre1"].field(household, "phone"),
              "the replica rebuilt after a reset differs")
        fresh = fc.Replica(pb)
        fresh.pull(self.api, cadre2.token)
        check(fresh.field(household, "phone") == replicas["cadre2"].field(household, "phone"),
              "a fresh snapshot and the incremental replica differ: %s vs %s"
              % (fresh.field(household, "phone"), replicas["cadre2"].field(household, "phone")))

    # 6.
    def node_keys(self):
        """The server's node device(s), which sign admin events: AdminService.ListDevices."""
        keys = {}
        token = ""
        while True:
            page = self.admin_call("ListDevices", user_id="system", include_revoked=True,
                                   page_token=token)
            for device in page.devices:
                keys[device.id] = device.public_key
            token = page.next_page_token
            if not token:
                return keys

    def chain_and_signatures(self):
        pb = self.pb
        # Keys: the node's from ListDevices; every device's from its DeviceEnrolled event in
        # the stream itself (checked against the keys this client made).
        keys = self.node_keys()
        check(keys, "ListDevices lists no node device")
        hq = self.devices["hq1"]
        entries = []
        stream = self.api.call("StreamService", "Subscribe", pb.SubscribeRequest(from_offset=0),
                               token=hq.token, timeout=30)
        for message in stream:
            which = message.WhichOneof("payload")
            if which == "batch":
                entries.extend(fc.log_entries(message.batch))
            elif which == "caught_up":
                break
        stream.cancel()
        check(len(entries) >= 10, "Subscribe gave only %d records" % len(entries))
        previous = None
        signed = 0
        for entry in entries:
            check(fc.chain_hash(entry.prev_hash, entry.offset, entry.record) == entry.hash,
                  "offset %d: hash is not SHA-256(prev_hash, offset, record)" % entry.offset)
            if entry.offset == 1:
                check(entry.prev_hash == fc.ZERO_HASH, "offset 1's prev_hash is not zero")
            if previous is not None and entry.offset == previous.offset + 1:
                check(entry.prev_hash == previous.hash,
                      "offset %d: prev_hash is not offset %d's hash" % (entry.offset,
                                                                        previous.offset))
            previous = entry
            stored = pb.StoredEvent.FromString(entry.record)
            check(stored.event, "offset %d: a record without event bytes travelled" % entry.offset)
            event = pb.Event.FromString(stored.event)
            if event.WhichOneof("body") == "device_enrolled":
                enrolled_key = event.device_enrolled.public_key
                mine = self.keys.get(event.subject.id)
                check(mine is None or mine == enrolled_key,
                      "DeviceEnrolled of %s carries another key" % event.subject.id)
                keys[event.subject.id] = enrolled_key
            key = keys.get(event.device_id)
            check(key is not None, "offset %d: unknown device %s" % (entry.offset, event.device_id))
            check(fc.verify_signature(key, stored.event, stored.signature),
                  "offset %d: the signature does not verify over the event bytes" % entry.offset)
            signed += 1
        for device_id in self.keys:
            check(keys.get(device_id) == self.keys[device_id],
                  "the stream has no DeviceEnrolled with the key of %s" % device_id)
        print("verified %d records' hashes and signatures from Subscribe (offsets %d..%d)"
              % (signed, entries[0].offset, entries[-1].offset))

    # 7.
    def schema(self):
        pb = self.pb
        check(self.pb.has_method("SyncService", "GetSchema"), "SyncService has no GetSchema")
        device = self.devices["cadre1"]
        answer = self.api.call("SyncService", "GetSchema",
                               self.api.request("SyncService", "GetSchema"), token=device.token)
        check(answer.schema_version, "GetSchema has no schema_version")
        fields = {f.name: f for f in answer.schema.household_fields}
        check("phone" in fields and fields["phone"].type == pb.FIELD_TYPE_STRING,
              "GetSchema: household field phone missing or not a string: %s"
              % fields.get("phone"))
        check(answer.limits.max_push_events > 0 and answer.limits.max_event_bytes > 0,
              "GetSchema limits: %s" % answer.limits)
        again = self.api.call("SyncService", "GetSchema",
                              self.api.request("SyncService", "GetSchema"), token=device.token)
        check(again.schema_version == answer.schema_version, "schema_version is not stable")

        # A batch over limits.max_push_events: RESOURCE_EXHAUSTED whose detail says "make it
        # smaller" and names the limit, without parsing the message.
        limit = answer.limits.max_push_events
        junk = pb.SignedEvent(event=b"\x0a\x01x", signature=b"\0" * 64)
        try:
            device.push([junk] * (limit + 1))
            raise Failure("a push of %d events (limit %d) succeeded" % (limit + 1, limit))
        except self.grpc.RpcError as error:
            check(error.code() == self.grpc.StatusCode.RESOURCE_EXHAUSTED,
                  "a push over max_push_events: %s %s" % (error.code(), error.details()))
            detail = fc.error_detail(pb, error)
            check(detail is not None, "RESOURCE_EXHAUSTED without fieldsync-error-bin")
            check(detail.action == pb.ErrorDetail.ACTION_MAKE_SMALLER and
                  detail.limit == "limits.max_push_events" and detail.limit_value == limit,
                  "RESOURCE_EXHAUSTED detail: %s" % detail)


if __name__ == "__main__":
    sys.exit(main())
