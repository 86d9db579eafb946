# Tests of the v1 services, auth and identity: included by tests/server/CMakeLists.txt.

# The services on a real gRPC server on port 0, with an injected clock and
# household locator; TestDevice signs with libsodium's Ed25519.
find_package(PkgConfig REQUIRED)
pkg_check_modules(SODIUM REQUIRED IMPORTED_TARGET libsodium)
add_library(fieldsync_service_harness STATIC service_harness.cc service_harness.h)
target_include_directories(fieldsync_service_harness PUBLIC ${PROJECT_SOURCE_DIR})
target_link_libraries(fieldsync_service_harness PUBLIC fieldsync_server PkgConfig::SODIUM
                      absl::str_format)
fieldsync_warnings(fieldsync_service_harness)

# A small world (areas, users, enrolled devices, households) made through the
# real API, for the end-to-end tests of the sync, query and stream services.
add_library(fieldsync_sync_world STATIC sync_world.cc sync_world.h)
target_link_libraries(fieldsync_sync_world PUBLIC fieldsync_service_harness GTest::gtest)
fieldsync_warnings(fieldsync_sync_world)

# SyncService Push and Pull: results, duplicates across restarts, sequence
# gaps, snapshots, resets, scope changes, relays.
fieldsync_test(push_pull_test
  SOURCES push_pull_test.cc
  DEPS fieldsync_sync_world)

# The bad-input table through gRPC.
fieldsync_test(bad_input_test
  SOURCES bad_input_test.cc
  DEPS fieldsync_sync_world)

# UploadBlob and GetBlobStatus.
fieldsync_test(blob_test
  SOURCES blob_test.cc
  DEPS fieldsync_sync_world)

# QueryService.
fieldsync_test(query_test
  SOURCES query_test.cc
  DEPS fieldsync_sync_world)

# StreamService.Subscribe.
fieldsync_test(subscribe_test
  SOURCES subscribe_test.cc
  DEPS fieldsync_sync_world)

fieldsync_test(identity_test
  SOURCES identity_test.cc
  DEPS fieldsync_service_harness)

# The role x RPC x scope table of docs/authorization.md against the server.
fieldsync_test(authorization_test
  SOURCES authorization_test.cc
  DEPS fieldsync_service_harness)
target_compile_definitions(authorization_test PRIVATE FIELDSYNC_SOURCE_DIR="${PROJECT_SOURCE_DIR}")

# AdminService end to end, with the real Gansu area tree.
set(FIELDSYNC_AREAS_CSV "${PROJECT_SOURCE_DIR}/deploy/gansu-admin-areas.csv" CACHE FILEPATH
    "The Gansu admin-area CSV (1,506 areas) imported by admin_service_test")
fieldsync_test(admin_service_test
  SOURCES admin_service_test.cc
  DEPS fieldsync_service_harness)
target_compile_definitions(admin_service_test PRIVATE FIELDSYNC_AREAS_CSV="${FIELDSYNC_AREAS_CSV}")

# A client we did not write: Python (Debian's python3-grpcio, python3-protobuf,
# python3-cryptography; tests/interop/fieldsync_client.py, written from
# docs/protocol.md) drives the real fieldsyncd through the whole contract of
# issue 9 and recomputes the golden vectors. Skipped (77) when /usr/bin/python3
# is missing or the tree's protos predate SignedEvent; a missing Python
# package fails.
if(EXISTS /usr/bin/python3)
  add_test(NAME ForeignClient.PythonGrpcioDrivesFieldsyncd
    COMMAND /usr/bin/python3 ${PROJECT_SOURCE_DIR}/tests/interop/foreign_client_test.py
            $<TARGET_FILE:fieldsyncd> ${PROJECT_SOURCE_DIR}/tests/proto)
else()
  add_test(NAME ForeignClient.PythonGrpcioDrivesFieldsyncd
    COMMAND sh -c "echo '/usr/bin/python3 not installed: skipped'; exit 77")
endif()
set_tests_properties(ForeignClient.PythonGrpcioDrivesFieldsyncd PROPERTIES
  SKIP_RETURN_CODE 77 TIMEOUT 120)

# SIGTERM while a push is in flight, against the real binary.
fieldsync_test(sigterm_push_test
  SOURCES sigterm_push_test.cc
  DEPS fieldsync_service_harness fieldsync_server_process fieldsync_storage)
target_compile_definitions(sigterm_push_test PRIVATE FIELDSYNCD_PATH="$<TARGET_FILE:fieldsyncd>")
add_dependencies(sigterm_push_test fieldsyncd)

# Relays and identities in the push path (issue 7 items 3, 4, 5, 6, 9): a
# relayed event is judged as its signer's; idempotency per signing device;
# corrections by the visit's author; unproven records belong to the pusher.
fieldsync_test(relay_defects_test
  SOURCES relay_defects_test.cc
  DEPS fieldsync_sync_world)

# Payload identities and the subject's real area (issue 7, items 6 and 7).
fieldsync_test(identity_area_test
  SOURCES identity_area_test.cc
  DEPS fieldsync_sync_world)

# Issue 7 items 1 and 13: writes against never-set values (a base other than
# 0, up to 2^64-1) answer a conflict instead of crashing the server; money and
# date bounds (ServerConfig.validation) reject naming the field and the bound.
fieldsync_test(merge_defects_test
  SOURCES merge_defects_test.cc
  DEPS fieldsync_sync_world)

# AdminService links and pushed LinkStarted / LinkEnded are one state: ListLinks,
# EndLink, Pull and Push agree whoever made or ended a link (issue 7 item 8).
fieldsync_test(links_agree_test
  SOURCES links_agree_test.cc
  DEPS fieldsync_sync_world)

# Issue 7 items 11, 12, 14a: open Subscribe streams end on revocation, the
# per-user share of streams, idle consumers reaped, the documented hash chain.
fieldsync_test(stream_defects_test
  SOURCES stream_defects_test.cc
  DEPS fieldsync_sync_world OpenSSL::Crypto)

# Issue 7 items 14b, 14c: the Enroll rate limit; disabling a user revokes its
# devices for good.
fieldsync_test(identity_defects_test
  SOURCES identity_defects_test.cc
  DEPS fieldsync_service_harness)

# Status proposals keyed by (signing device, event_id): two devices' proposals
# with one event_id on one household are both kept, each decided by its decision.
fieldsync_test(proposal_keys_test
  SOURCES proposal_keys_test.cc
  DEPS fieldsync_sync_world)

# Blob uploads owned by their device and bounded: strangers, scope, quotas,
# expiry with the disk given back, revocation of an open upload (issue 7).
fieldsync_test(blob_ownership_test
  SOURCES blob_ownership_test.cc
  DEPS fieldsync_sync_world)

# A full disk (a tmpfs the test mounts; root only, else skipped) against the
# real binary: writes UNAVAILABLE, reads served, metrics and health, recovery.
fieldsync_test(full_disk_test
  SOURCES full_disk_test.cc
  DEPS fieldsync_service_harness fieldsync_server_process fieldsync_storage
       fieldsync_test_grpc_proto
  PROPERTIES RUN_SERIAL TRUE TIMEOUT 300)
target_compile_definitions(full_disk_test PRIVATE FIELDSYNCD_PATH="$<TARGET_FILE:fieldsyncd>")
add_dependencies(full_disk_test fieldsyncd)

# Issue 11: ReportService's assessment and evidence on hand-built worlds
# (one rule per test, numbers by hand), and who may read which report.
fieldsync_test(report_assessment_test
  SOURCES report_assessment_test.cc
  DEPS fieldsync_sync_world)
fieldsync_test(report_evidence_test
  SOURCES report_evidence_test.cc
  DEPS fieldsync_sync_world)
fieldsync_test(report_access_test
  SOURCES report_access_test.cc
  DEPS fieldsync_sync_world)
fieldsync_test(report_info_test
  SOURCES report_info_test.cc
  DEPS fieldsync_sync_world)

# Issue 12: Subscribe at speed: batches within their bounds, live batches woken
# by the commit, the slow-consumer cut and its exact resume, filters matching
# nothing over long logs, the catch-up/live switch, the hash chain from batches.
fieldsync_test(stream_speed_test
  SOURCES stream_speed_test.cc
  DEPS fieldsync_sync_world fieldsync_storage fieldsync_sync OpenSSL::Crypto)

# Issue 8: a client's blob that does not hash to its sha256 is INVALID_ARGUMENT
# (not DATA_LOSS); a chunk at the wrong offset names the offset.
fieldsync_test(blob_input_test
  SOURCES blob_input_test.cc
  DEPS fieldsync_sync_world)

# Issue 8: reads bounded by records examined (Pull, snapshot pages,
# ListRejections, GetHistory) with limits.max_examined_records; Pull and
# queries on the read executor; storage.backups_to_keep prunes backups.
fieldsync_test(runtime_bounds_test
  SOURCES runtime_bounds_test.cc
  DEPS fieldsync_sync_world)

# Issue 8: RateLimiter O(1) per call at 400,000 devices, memory bounded.
fieldsync_test(rate_limit_test
  SOURCES rate_limit_test.cc
  DEPS fieldsync_server)

# Issue 8: the read executor's bounded queue.
fieldsync_test(bounded_executor_test
  SOURCES bounded_executor_test.cc
  DEPS fieldsync_server)

# Issue 8: one defaults table (StoreOptions, SyncOptions, ServiceSettings).
fieldsync_test(defaults_test
  SOURCES defaults_test.cc
  DEPS fieldsync_server)

# Issue 8: for random interleavings (50 seeded worlds) of AdminService link
# calls and pushed LinkStarted / LinkEnded, ListLinks, EndLink and every
# cadre's Pull scope agree with the domain's links.
fieldsync_test(link_scope_property_test
  SOURCES link_scope_property_test.cc
  DEPS fieldsync_sync_world)

# Issue 8: one record per area, unit and user (the domain's); Snapshot.areas.
fieldsync_test(reference_once_test
  SOURCES reference_once_test.cc
  DEPS fieldsync_sync_world)

# One write path (issue 8): server-made events through the sync engine (one
# HLC, the node's sequence in the engine's marks, the subject index), corrupt
# high-water marks are DATA_LOSS.
fieldsync_test(write_path_test
  SOURCES write_path_test.cc
  DEPS fieldsync_sync_world)

# The node key file: 0600, never in the store or its backups, kept across
# restarts, moved out of an older version's store.
fieldsync_test(node_key_test
  SOURCES node_key_test.cc
  DEPS fieldsync_service_harness)

# Issue 10: the demo county (fieldsyncd --demo=county, server/demo.h) loads on
# the first start of an empty data directory through the served API, and a
# second start adds nothing.
fieldsync_test(demo_test
  SOURCES demo_test.cc
  DEPS fieldsync_server_process fieldsync_sync fieldsync_proto)
fieldsync_uses_fieldsyncd(demo_test)
target_compile_definitions(demo_test PRIVATE
  AREAS_CSV_PATH="${PROJECT_SOURCE_DIR}/deploy/gansu-admin-areas.csv")

# Issue 9 (contract): Pull alone replays conflicts and their resolutions; area
# codes exist at the level the body needs; no existence oracle; GetSchema;
# RESOURCE_EXHAUSTED details; an invented cursor is UNKNOWN_CURSOR; a request
# that does not parse is INVALID_ARGUMENT naming the field.
fieldsync_test(pull_replay_test
  SOURCES pull_replay_test.cc
  DEPS fieldsync_sync_world)
fieldsync_test(area_exists_test
  SOURCES area_exists_test.cc
  DEPS fieldsync_sync_world)
fieldsync_test(existence_oracle_test
  SOURCES existence_oracle_test.cc
  DEPS fieldsync_sync_world)
fieldsync_test(schema_test
  SOURCES schema_test.cc
  DEPS fieldsync_sync_world)
fieldsync_test(error_detail_test
  SOURCES error_detail_test.cc
  DEPS fieldsync_sync_world)
fieldsync_test(unknown_cursor_test
  SOURCES unknown_cursor_test.cc
  DEPS fieldsync_sync_world)
fieldsync_test(malformed_request_test
  SOURCES malformed_request_test.cc
  DEPS fieldsync_service_harness)

# Issue 8 leftovers in AdminService: List* pages bounded by index entries
# examined (limits.max_examined_records), one year range for link dates,
# Device.last_device_seq filled from the engine.
fieldsync_test(admin_bounds_test
  SOURCES admin_bounds_test.cc
  DEPS fieldsync_sync_world)

# Issue 12: Subscribe consumers that stop reading are cut and let go, in
# every state their stream can be in.
fieldsync_test(stream_stall_test
  SOURCES stream_stall_test.cc
  DEPS fieldsync_sync_world)

# Issue 9 (wire contract): signed bytes verified and kept verbatim, unknown
# fields and unparseable bytes MALFORMED per event, Held behind a gap or a bad
# signature (per signer), EVENT_ID_REUSED before SEQUENCE_REUSED, the chain and
# every signature recomputed from a Subscribe stream.
fieldsync_test(wire_contract_test
  SOURCES wire_contract_test.cc
  DEPS fieldsync_sync_world PkgConfig::SODIUM OpenSSL::Crypto)
