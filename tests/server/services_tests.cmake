# Tests of the v1 services, auth and identity: included by tests/server/CMakeLists.txt.

# The services on a real gRPC server on port 0, with an injected clock and
# household locator.
add_library(fieldsync_service_harness STATIC service_harness.cc service_harness.h)
target_include_directories(fieldsync_service_harness PUBLIC ${PROJECT_SOURCE_DIR})
target_link_libraries(fieldsync_service_harness PUBLIC fieldsync_server)
fieldsync_warnings(fieldsync_service_harness)

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

# A client we did not write: Debian's python3-grpcio drives the real fieldsyncd
# (health, reflection, AdminService, Enroll). Skipped (77) only when
# /usr/bin/python3 itself is missing; a missing python3-grpcio fails.
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
