#!/usr/bin/python3
"""Drives a real fieldsyncd from a client we did not write: Debian's python3-grpcio.

Nothing of fieldsync's own client code or generated stubs is used. The standard
health and reflection protos are compiled with protoc at test time into a temp
directory; the fieldsync.v1 messages are built at run time from the descriptors
the server itself returns through reflection. The test:

  1. starts fieldsyncd on 127.0.0.1:0 with a fresh data dir and reads the first
     admin token from <data_dir>/admin-token;
  2. calls grpc.health.v1.Health/Check (SERVING);
  3. lists the services through reflection and fetches the AdminService and
     SyncService descriptors;
  4. calls AdminService.UpsertUnit and ListUnits with the token (and without:
     UNAUTHENTICATED), then IssueEnrollmentCode and SyncService.Enroll, and
     uses the enrolled device's token;
  5. stops the server with SIGTERM and expects exit status 0.

Usage: foreign_client_test.py FIELDSYNCD PROTO_ROOT
Exit status 0 on success, 1 on any failure (a missing python3-grpcio or protoc
included: deploy/install-deps.sh installs both). CTest skips the test only when
/usr/bin/python3 itself is missing (see tests/server/services_tests.cmake).
"""

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile

def fail(message):
    print("FAIL: " + message, file=sys.stderr)
    sys.exit(1)


def main():
    if len(sys.argv) != 3:
        fail("usage: foreign_client_test.py FIELDSYNCD PROTO_ROOT")
    fieldsyncd, proto_root = sys.argv[1], sys.argv[2]
    try:
        import grpc  # noqa: F401
        from google.protobuf import descriptor_pb2  # noqa: F401
    except ImportError as error:
        # deploy/install-deps.sh installs them: their absence is a broken setup.
        fail("python3-grpcio / python3-protobuf not installed: %s" % error)
    protoc = shutil.which("protoc")
    if protoc is None:
        fail("protoc (protobuf-compiler) not installed")

    work = tempfile.mkdtemp(prefix="fieldsync_foreign_client_")
    server = None
    try:
        # The protos are copied under names of their own: their module path
        # must not fall inside the installed "grpc" package.
        stubs = os.path.join(work, "stubs")
        os.makedirs(stubs)
        for source, target in (("grpc/health/v1/health.proto", "foreign_health.proto"),
                               ("grpc/reflection/v1alpha/reflection.proto",
                                "foreign_reflection.proto")):
            shutil.copy(os.path.join(proto_root, source), os.path.join(stubs, target))
        subprocess.run(
            [protoc, "-I" + stubs, "--python_out=" + stubs, "foreign_health.proto",
             "foreign_reflection.proto"],
            check=True)
        sys.path.insert(0, stubs)

        data_dir = os.path.join(work, "data")
        server = subprocess.Popen(
            [fieldsyncd, "--data_dir=" + data_dir, "--listen=127.0.0.1:0",
             "--metrics_listen=off"],
            stdout=subprocess.PIPE, text=True)
        port = None
        for line in server.stdout:
            match = re.match(r"fieldsyncd listening on [^ ]+:(\d+)\s*$", line)
            if match:
                port = int(match.group(1))
                break
        if port is None:
            fail("fieldsyncd did not say where it listens (exit %s)" % server.wait())
        with open(os.path.join(data_dir, "admin-token")) as token_file:
            token = token_file.read().strip()
        mode = os.stat(os.path.join(data_dir, "admin-token")).st_mode & 0o777
        if mode != 0o600:
            fail("admin-token has mode %o, want 600" % mode)

        run_client("127.0.0.1:%d" % port, token)

        server.send_signal(signal.SIGTERM)
        status = server.wait(timeout=30)
        if status != 0:
            fail("fieldsyncd exited with %d after SIGTERM" % status)
        server = None
        print("PASS: health, reflection, AdminService and Enroll from python3-grpcio")
    finally:
        if server is not None:
            server.kill()
            server.wait()
        shutil.rmtree(work, ignore_errors=True)


def run_client(address, token):
    import grpc
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
    import foreign_health_pb2 as health_pb2
    import foreign_reflection_pb2 as reflection_pb2

    channel = grpc.insecure_channel(address)
    grpc.channel_ready_future(channel).result(timeout=30)

    # 1. Health.
    check = channel.unary_unary(
        "/grpc.health.v1.Health/Check",
        request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
        response_deserializer=health_pb2.HealthCheckResponse.FromString)
    health = check(health_pb2.HealthCheckRequest(), timeout=10)
    if health.status != health_pb2.HealthCheckResponse.SERVING:
        fail("health is %s, want SERVING" % health.status)

    # 2. Reflection: the services, then the descriptors of two of them.
    reflect = channel.stream_stream(
        "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
        request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
        response_deserializer=reflection_pb2.ServerReflectionResponse.FromString)
    requests = [
        reflection_pb2.ServerReflectionRequest(list_services=""),
        reflection_pb2.ServerReflectionRequest(
            file_containing_symbol="fieldsync.v1.AdminService"),
        reflection_pb2.ServerReflectionRequest(
            file_containing_symbol="fieldsync.v1.SyncService"),
    ]
    responses = list(reflect(iter(requests), timeout=10))
    if len(responses) != 3:
        fail("reflection answered %d messages to 3 requests" % len(responses))
    services = {s.name for s in responses[0].list_services_response.service}
    for wanted in ("fieldsync.v1.SyncService", "fieldsync.v1.AdminService",
                   "fieldsync.v1.QueryService", "fieldsync.v1.StreamService",
                   "fieldsync.v1.ReportService", "grpc.health.v1.Health"):
        if wanted not in services:
            fail("reflection does not list %s (got %s)" % (wanted, sorted(services)))
    files = {}
    for response in responses[1:]:
        if response.HasField("error_response"):
            fail("reflection error: " + response.error_response.error_message)
        for raw in response.file_descriptor_response.file_descriptor_proto:
            proto = descriptor_pb2.FileDescriptorProto.FromString(raw)
            files[proto.name] = proto
    pool = descriptor_pool.DescriptorPool()
    added = set()

    def add(name):
        if name in added:
            return
        if name not in files:
            fail("reflection did not send %s" % name)
        for dependency in files[name].dependency:
            add(dependency)
        pool.Add(files[name])
        added.add(name)

    for name in list(files):
        add(name)
    factory = message_factory.MessageFactory(pool)

    def message(full_name):
        descriptor = pool.FindMessageTypeByName(full_name)
        if hasattr(message_factory, "GetMessageClass"):
            return message_factory.GetMessageClass(descriptor)
        return factory.GetPrototype(descriptor)

    def method(service, name):
        descriptor = pool.FindServiceByName("fieldsync.v1." + service).FindMethodByName(name)
        request_class = message(descriptor.input_type.full_name)
        response_class = message(descriptor.output_type.full_name)
        call = channel.unary_unary(
            "/fieldsync.v1.%s/%s" % (service, name),
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=response_class.FromString)
        return request_class, call

    def bearer(value):
        return [("authorization", "Bearer " + value)]

    # 3. AdminService with the first admin's token.
    UpsertUnitRequest, upsert_unit = method("AdminService", "UpsertUnit")
    Unit = message("fieldsync.v1.Unit")
    unit = upsert_unit(UpsertUnitRequest(unit=Unit(name="甘肃省扶贫办 (foreign client)")),
                       metadata=bearer(token), timeout=10)
    if not unit.unit.id or unit.offset == 0:
        fail("UpsertUnit answered %s" % unit)

    ListUnitsRequest, list_units = method("AdminService", "ListUnits")
    units = list_units(ListUnitsRequest(), metadata=bearer(token), timeout=10)
    if [u.id for u in units.units] != [unit.unit.id]:
        fail("ListUnits answered %s" % units)

    try:
        list_units(ListUnitsRequest(), timeout=10)
        fail("ListUnits without a token succeeded")
    except grpc.RpcError as error:
        if error.code() != grpc.StatusCode.UNAUTHENTICATED:
            fail("ListUnits without a token: %s, want UNAUTHENTICATED" % error.code())

    # 4. A device of the admin, enrolled from this client.
    IssueRequest, issue = method("AdminService", "IssueEnrollmentCode")
    code = issue(IssueRequest(user_id="admin"), metadata=bearer(token), timeout=10)
    EnrollRequest, enroll = method("SyncService", "Enroll")
    enrolled = enroll(EnrollRequest(code=code.code, ed25519_public_key=os.urandom(32),
                                    device_model="python3-grpcio"), timeout=10)
    if not enrolled.token or enrolled.user_id != "admin":
        fail("Enroll answered %s" % enrolled)
    units = list_units(ListUnitsRequest(), metadata=bearer(enrolled.token), timeout=10)
    if len(units.units) != 1:
        fail("ListUnits with the enrolled device's token answered %s" % units)
    channel.close()


if __name__ == "__main__":
    main()
