// The call log: one line per gRPC call (method, peer, user, status, latency,
// request id) through spdlog, and the per-method call metrics. Installed as a
// server interceptor, so it sees every call, health and reflection included.
//
// Request ids: the client's `x-request-id` metadata when it sent a usable one
// (1-64 characters of [A-Za-z0-9._:-]), else 32 random hex digits. The id is
// returned to the client as `x-request-id` initial and trailing metadata.
//
// Metrics (registered in the given registry):
//   fieldsync_rpc_calls_total{method,code}        counter, at the end of each call
//   fieldsync_rpc_duration_seconds{method,code}   histogram, call start to status
// `method` is the full gRPC method ("/fieldsync.v1.SyncService/Push") when it
// is a method of a known service, else "unknown" (a client must not be able
// to create series at will).
//
// Thread-safe.
#pragma once

#include <grpcpp/support/server_interceptor.h>

#include <memory>
#include <string>

namespace fieldsync::server {

class MetricsRegistry;

// Creates the interceptor factory for ServerBuilder::experimental()
// .SetInterceptorCreators. `metrics` must outlive the server.
std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface> NewCallLogFactory(
    MetricsRegistry* metrics);

// Records who made the call behind `context`, for its log line. Called by the
// authentication guard once it knows the principal. A no-op for a context the
// call log does not track (no interceptor, or the status was already sent).
void SetCallUser(const grpc::ServerContextBase* context, const std::string& user_id);

// The request id of the call behind `context` ("" if the call log does not
// track it), e.g. to quote in an error message or a log line of a service.
std::string CallRequestId(const grpc::ServerContextBase* context);

}  // namespace fieldsync::server
