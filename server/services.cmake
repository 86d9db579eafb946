# The service side of server/: included by server/CMakeLists.txt.
# Sources and headers of the v1 service implementations, auth and identity.
set(FIELDSYNC_SERVICE_SOURCES
  admin_service.cc
  admin_service_areas.cc
  admin_service_backups.cc
  admin_service_devices.cc
  admin_service_links.cc
  admin_service_people.cc
  auth.cc
  bounded_executor.cc
  blob_uploads.cc
  directory.cc
  identity.cc
  node_key.cc
  open_streams.cc
  query_service.cc
  rate_limit.cc
  report_service.cc
  secrets.cc
  service_context.cc
  services.cc
  stream_catch_up.cc
  stream_hub.cc
  stream_reactor.cc
  stream_readers.cc
  stream_records.cc
  stream_service.cc
  stream_wire.cc
  sync_service.cc
)
set(FIELDSYNC_SERVICE_HEADERS
  admin_service.h
  admin_service_internal.h
  auth.h
  bounded_executor.h
  blob_uploads.h
  directory.h
  identity.h
  node_key.h
  open_streams.h
  offload.h
  query_service.h
  rate_limit.h
  report_service.h
  secrets.h
  service_context.h
  services.h
  stream_batch_cache.h
  stream_hub.h
  stream_internal.h
  stream_reactor.h
  stream_readers.h
  stream_records.h
  stream_service.h
  stream_wire.h
  sync_service.h
)

# The services read the domain's state (households, pushed links: see
# server/directory.h), so fieldsync_server links fieldsync_domain (an allowed
# edge: server -> domain). Deferred to the end of server/CMakeLists.txt, which
# declares the target after including this file.
cmake_language(DEFER CALL target_link_libraries fieldsync_server PUBLIC fieldsync_domain)
