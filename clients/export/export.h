// fieldsync_export: the analyst's export. Reads the events of a fieldsync
// server over gRPC (StreamService.Subscribe, as an HQ analyst or admin) after
// an offset and writes them as JSON Lines or CSV, with a checkpoint file that
// makes a rerun resume exactly where the last one stopped: no event lost, none
// written twice, whatever interrupted it. docs/export.md documents both
// formats (the CSV columns) and the checkpoint.
//
// Clients depend on base, proto, gRPC, std and Abseil only: nothing here
// includes a server header.
//
// Thread-safety: ExportEvents may run concurrently with itself for different
// checkpoint and output files; one checkpoint belongs to one run at a time.
#pragma once

#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <ostream>
#include <string>
#include "absl/strings/string_view.h"
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "fieldsync/v1/event.pb.h"

namespace fieldsync::clients {

enum class ExportFormat {
  kJsonl,  // One JSON object per line: offset, hash, prevHash, record, event (export.cc Format).
  kCsv,    // A header row, then one row per event (columns: CsvColumns()).
};

// "jsonl" or "csv"; InvalidArgument otherwise.
absl::StatusOr<ExportFormat> ParseExportFormat(absl::string_view name);

// The CSV header, in order (docs/export.md says what each holds).
const std::vector<std::string>& CsvColumns();

// How far a run has got; given to ExportOptions::progress.
struct ExportProgress {
  uint64_t events_written = 0;  // By this run.
  uint64_t last_offset = 0;     // Everything matching up to this offset is written.
  uint64_t head_offset = 0;     // The server's log head, as last reported (0 until known).
};

struct ExportOptions {
  // gRPC channel target, e.g. "127.0.0.1:50051". Required unless `channel`.
  std::string target;
  // Channel credentials; null = plaintext (grpc::InsecureChannelCredentials).
  std::shared_ptr<grpc::ChannelCredentials> credentials;
  // A channel to use instead of target and credentials (e.g. the caller's
  // own, with its TLS and options); null = make one from `target`.
  std::shared_ptr<grpc::Channel> channel;
  // The bearer token of an HQ analyst or admin. Required.
  std::string bearer_token;
  // Export the events after this log offset, when there is no checkpoint yet
  // (0: from the start). With a checkpoint the run resumes after the
  // checkpoint's offset and this is ignored.
  uint64_t from_offset = 0;
  ExportFormat format = ExportFormat::kJsonl;
  // The checkpoint file. Required. Written (atomically: a temporary file
  // renamed over it, both synced) after the output is synced.
  std::string checkpoint_path;
  // Where the events go: exactly one of the two.
  //  - output_path: a file the run appends to. A resumed run first cuts it
  //    back to the length the checkpoint recorded (bytes written after the
  //    last checkpoint belong to events the checkpoint does not count), so
  //    the resume is exact. A file that exists without a checkpoint is
  //    refused (FailedPrecondition): it would mix two exports.
  //  - output: a stream (e.g. std::cout), borrowed for the call. The run
  //    flushes it before each checkpoint; it cannot cut what a consumer
  //    received after the last checkpoint, so after an interruption the next
  //    run may repeat up to checkpoint_every events (each line carries its
  //    offset).
  std::string output_path;
  std::ostream* output = nullptr;
  // Only these kinds / area-code prefixes (SubscribeRequest filters); empty =
  // everything the token may see.
  std::vector<v1::EventKind> kinds;
  std::vector<std::string> scope_prefixes;
  // Stop after this many events (0: no limit), with a checkpoint.
  uint64_t max_events = 0;
  // false: stop once caught up with the log head (the server's caught_up
  // marker). true: keep writing live events until an error or max_events.
  bool follow = false;
  // Events between checkpoints. Default 1000; at least 1.
  uint64_t checkpoint_every = 1000;
  // Called after every checkpoint, on the calling thread.
  std::function<void(const ExportProgress&)> progress;
};

struct ExportResult {
  uint64_t events_written = 0;  // By this run.
  uint64_t last_offset = 0;     // Resume point: everything up to it is written.
  bool resumed = false;         // A checkpoint was found and continued.
};

// Runs one export; blocks until caught up (or max_events, or forever with
// follow). Errors: InvalidArgument for bad options; FailedPrecondition for a
// checkpoint of another format, or an output file without a checkpoint;
// DataLoss for an unreadable checkpoint or an output file shorter than its
// checkpoint; the server's status (UNAUTHENTICATED, PERMISSION_DENIED,
// OUT_OF_RANGE for an offset past its head, UNAVAILABLE, RESOURCE_EXHAUSTED
// for a consumer cut as too slow) after writing a checkpoint for what was
// written, so a rerun continues; Internal for a failed write of the output.
absl::StatusOr<ExportResult> ExportEvents(const ExportOptions& options);

}  // namespace fieldsync::clients
