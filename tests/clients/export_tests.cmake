# The analyst's export (clients/export, issue 12): included by
# tests/CMakeLists.txt (paths relative to tests/). Runs against the in-process
# server of tests/server (SyncWorld).
fieldsync_test(export_test
  SOURCES clients/export_test.cc
  DEPS fieldsync_export fieldsync_sync_world)
