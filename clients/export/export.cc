#include "clients/export/export.h"

#include <fcntl.h>
#include <google/protobuf/util/json_util.h>
#include <google/protobuf/util/time_util.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <optional>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "base/area_code.h"
#include "fieldsync/v1/stream_service.grpc.pb.h"

namespace fieldsync::clients {
namespace {

constexpr char kCheckpointMagic[] = "# fieldsync export checkpoint v1 (docs/export.md)";

absl::Status FromErrno(absl::string_view what, const std::string& path) {
  return absl::InternalError(absl::StrCat(what, " ", path, ": ", strerror(errno)));
}

absl::Status FromGrpc(const grpc::Status& status) {
  if (status.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                      absl::StrCat("server: ", status.error_message()));
}

std::string FormatName(ExportFormat format) {
  return format == ExportFormat::kCsv ? "csv" : "jsonl";
}

// What a checkpoint records: everything matching up to last_offset is in the
// first output_bytes bytes of the output.
struct Checkpoint {
  ExportFormat format = ExportFormat::kJsonl;
  uint64_t last_offset = 0;
  uint64_t output_bytes = 0;
  uint64_t events = 0;  // Written by every run so far, for the operator.
};

// NotFound when there is no checkpoint file.
absl::StatusOr<Checkpoint> ReadCheckpoint(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    if (!std::filesystem::exists(path)) return absl::NotFoundError("no checkpoint");
    return absl::DataLossError(absl::StrCat("checkpoint ", path, ": cannot read"));
  }
  std::string line;
  Checkpoint checkpoint;
  bool magic = false, format = false, offset = false, bytes = false;
  while (std::getline(in, line)) {
    if (line == kCheckpointMagic) {
      magic = true;
      continue;
    }
    std::pair<std::string, std::string> kv = absl::StrSplit(line, absl::MaxSplits('=', 1));
    if (kv.first == "format") {
      absl::StatusOr<ExportFormat> parsed = ParseExportFormat(kv.second);
      if (!parsed.ok()) break;
      checkpoint.format = *parsed;
      format = true;
    } else if (kv.first == "last_offset") {
      offset = absl::SimpleAtoi(kv.second, &checkpoint.last_offset);
    } else if (kv.first == "output_bytes") {
      bytes = absl::SimpleAtoi(kv.second, &checkpoint.output_bytes);
    } else if (kv.first == "events") {
      if (!absl::SimpleAtoi(kv.second, &checkpoint.events)) checkpoint.events = 0;
    }
  }
  if (!magic || !format || !offset || !bytes) {
    return absl::DataLossError(absl::StrCat("checkpoint ", path,
                                            " is not a fieldsync export checkpoint (or is "
                                            "damaged); remove it and the output to start over"));
  }
  return checkpoint;
}

absl::Status SyncDirectoryOf(const std::string& path) {
  // Built in one expression: GCC 12 at -O3 warns (-Wrestrict, a false positive:
  // its bug 105329) on `dir = "."` after the copy, which failed `make run`.
  const std::filesystem::path parent = std::filesystem::path(path).parent_path();
  const std::string dir = parent.empty() ? std::string(".") : parent.string();
  int fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return FromErrno("opening the directory", dir);
  const bool ok = fsync(fd) == 0;
  close(fd);
  if (!ok) return FromErrno("syncing the directory", dir);
  return absl::OkStatus();
}

// Writes the checkpoint atomically: a synced temporary file renamed over it.
absl::Status WriteCheckpoint(const std::string& path, const Checkpoint& checkpoint) {
  const std::string temp = path + ".tmp";
  const std::string text =
      absl::StrCat(kCheckpointMagic, "\nformat=", FormatName(checkpoint.format),
                   "\nlast_offset=", checkpoint.last_offset,
                   "\noutput_bytes=", checkpoint.output_bytes, "\nevents=", checkpoint.events, "\n");
  int fd = open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return FromErrno("creating", temp);
  const bool ok = write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) &&
                  fsync(fd) == 0;
  close(fd);
  if (!ok) return FromErrno("writing", temp);
  if (rename(temp.c_str(), path.c_str()) != 0) return FromErrno("renaming over", path);
  return SyncDirectoryOf(path);
}

// Where the formatted events go.
class Sink {
 public:
  virtual ~Sink() = default;
  virtual absl::Status Write(absl::string_view bytes) = 0;
  // Makes everything written durable (file) or handed on (stream).
  virtual absl::Status Sync() = 0;
  uint64_t bytes() const { return bytes_; }

 protected:
  uint64_t bytes_ = 0;
};

class FileSink final : public Sink {
 public:
  ~FileSink() override {
    if (fd_ >= 0) close(fd_);
  }

  // A fresh output (no checkpoint): absent or empty, else FailedPrecondition.
  // A resumed one: cut back to `length`.
  absl::Status Open(const std::string& path, std::optional<uint64_t> length) {
    path_ = path;
    struct stat st;
    const bool exists = stat(path.c_str(), &st) == 0;
    if (!length.has_value()) {
      if (exists && st.st_size > 0) {
        return absl::FailedPreconditionError(absl::StrCat(
            "output ", path, " exists and there is no checkpoint: it would mix two exports "
                             "(remove it, or give the checkpoint of the run that wrote it)"));
      }
      fd_ = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
      if (fd_ < 0) return FromErrno("creating", path);
      return absl::OkStatus();
    }
    if (!exists) {
      return absl::DataLossError(absl::StrCat("output ", path, " is missing; its checkpoint says ",
                                              *length, " bytes were written"));
    }
    if (static_cast<uint64_t>(st.st_size) < *length) {
      return absl::DataLossError(absl::StrCat("output ", path, " has ", st.st_size,
                                              " bytes; its checkpoint says ", *length,
                                              " were written"));
    }
    fd_ = open(path.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd_ < 0) return FromErrno("opening", path);
    // Bytes past the checkpoint are events it does not count: the run that
    // wrote them was interrupted before its next checkpoint.
    if (ftruncate(fd_, static_cast<off_t>(*length)) != 0) return FromErrno("truncating", path);
    if (lseek(fd_, 0, SEEK_END) < 0) return FromErrno("seeking", path);
    bytes_ = *length;
    return absl::OkStatus();
  }

  absl::Status Write(absl::string_view bytes) override {
    buffer_.append(bytes.data(), bytes.size());
    if (buffer_.size() >= (1 << 20)) return Flush();
    return absl::OkStatus();
  }

  absl::Status Sync() override {
    if (absl::Status flushed = Flush(); !flushed.ok()) return flushed;
    if (fdatasync(fd_) != 0) return FromErrno("syncing", path_);
    return absl::OkStatus();
  }

 private:
  absl::Status Flush() {
    size_t done = 0;
    while (done < buffer_.size()) {
      ssize_t n = write(fd_, buffer_.data() + done, buffer_.size() - done);
      if (n < 0) {
        if (errno == EINTR) continue;
        return FromErrno("writing", path_);
      }
      done += static_cast<size_t>(n);
    }
    bytes_ += buffer_.size();
    buffer_.clear();
    return absl::OkStatus();
  }

  std::string path_;
  int fd_ = -1;
  std::string buffer_;
};

class StreamSink final : public Sink {
 public:
  StreamSink(std::ostream* out, uint64_t bytes) : out_(out) { bytes_ = bytes; }
  absl::Status Write(absl::string_view bytes) override {
    out_->write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    if (!*out_) return absl::InternalError("writing the output stream failed");
    bytes_ += bytes.size();
    return absl::OkStatus();
  }
  absl::Status Sync() override {
    out_->flush();
    if (!*out_) return absl::InternalError("flushing the output stream failed");
    return absl::OkStatus();
  }

 private:
  std::ostream* out_;
};

// ---- Formats ----

std::string Json(const google::protobuf::Message& message) {
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  std::string out;
  // Serializing a parsed message cannot fail (no Any with unknown types).
  (void)google::protobuf::util::MessageToJsonString(message, &out, options);
  return out;
}

std::string CsvField(absl::string_view value) {
  if (value.find_first_of(",\"\r\n") == absl::string_view::npos) return std::string(value);
  std::string out = "\"";
  for (char c : value) {
    if (c == '"') out.push_back('"');
    out.push_back(c);
  }
  out.push_back('"');
  return out;
}

std::string Time(const google::protobuf::Timestamp& t, bool present) {
  return present ? google::protobuf::util::TimeUtil::ToString(t) : "";
}

// "household" for SUBJECT_KIND_HOUSEHOLD.
std::string SubjectKindName(v1::SubjectKind kind) {
  std::string name = v1::SubjectKind_Name(kind);
  constexpr std::string_view kPrefix = "SUBJECT_KIND_";
  if (name.starts_with(kPrefix)) name = name.substr(kPrefix.size());
  return absl::AsciiStrToLower(name);
}

// The county's code: the county level's significant digits (base/area_code.h).
std::string CountyCode(const std::string& area_code) {
  const size_t digits = base::SignificantDigits(base::AreaLevel::kCounty);
  return area_code.size() >= digits ? area_code.substr(0, digits) : "";
}

// One streamed LogEntry, parsed: the record (StoredEvent) and the Event in it.
struct Exported {
  uint64_t offset_ = 0;
  std::string hash_, prev_hash_;
  v1::StoredEvent record;
  v1::Event parsed;
  uint64_t offset() const { return offset_; }
  const v1::Event& event() const { return parsed; }
  const std::string& hash() const { return hash_; }
  const std::string& prev_hash() const { return prev_hash_; }
  const google::protobuf::Timestamp& received_at() const { return record.received_at(); }
  bool has_received_at() const { return record.has_received_at(); }
  const std::string& actor() const { return record.actor(); }
  const std::string& relayed_by() const { return record.relayed_by(); }
  uint64_t adopted_hlc() const { return record.adopted_hlc(); }
  bool hlc_flagged() const { return record.hlc_flagged(); }
};

std::string CsvRow(const Exported& stored) {
  const v1::Event& e = stored.event();
  const google::protobuf::Reflection* reflection = e.GetReflection();
  const google::protobuf::FieldDescriptor* body = reflection->GetOneofFieldDescriptor(
      e, e.GetDescriptor()->FindOneofByName("body"));
  const bool has_location = e.has_location();
  std::vector<std::string> fields = {
      absl::StrCat(stored.offset()),
      Time(stored.received_at(), stored.has_received_at()),
      e.event_id(),
      e.device_id(),
      absl::StrCat(e.device_seq()),
      body == nullptr ? "" : body->name(),
      SubjectKindName(e.subject().kind()),
      e.subject().id(),
      e.area_code(),
      CountyCode(e.area_code()),
      stored.actor(),
      stored.relayed_by(),
      absl::StrCat(e.hlc()),
      absl::StrCat(stored.adopted_hlc()),
      stored.hlc_flagged() ? "true" : "false",
      Time(e.device_time(), e.has_device_time()),
      has_location ? absl::StrCat(e.location().lat()) : "",
      has_location ? absl::StrCat(e.location().lng()) : "",
      has_location ? absl::StrCat(e.location().accuracy_m()) : "",
      has_location ? Time(e.location().fix_time(), e.location().has_fix_time()) : "",
      absl::BytesToHexString(stored.hash()),
      absl::BytesToHexString(stored.prev_hash()),
      body == nullptr ? "" : Json(reflection->GetMessage(e, body)),
  };
  std::string row;
  for (size_t i = 0; i < fields.size(); ++i) {
    if (i > 0) row.push_back(',');
    row += CsvField(fields[i]);
  }
  row += "\r\n";
  return row;
}

// JSONL: {"offset", "hash", "prevHash" (hex), "record": the StoredEvent's
// proto3 JSON without its event bytes, "event": the Event's proto3 JSON}.
std::string Format(ExportFormat format, const Exported& stored) {
  if (format == ExportFormat::kCsv) return CsvRow(stored);
  v1::StoredEvent record = stored.record;
  record.clear_event();
  return absl::StrCat("{\"offset\":\"", stored.offset(), "\",\"hash\":\"",
                      absl::BytesToHexString(stored.hash()), "\",\"prevHash\":\"",
                      absl::BytesToHexString(stored.prev_hash()), "\",\"record\":", Json(record),
                      ",\"event\":", Json(stored.event()), "}\n");
}

// The events of one stream message (the form the stream carries them in is
// the stream's contract: keep its reading here, in one place).
absl::StatusOr<std::vector<Exported>> EventsOf(const v1::SubscribeResponse& response) {
  std::vector<Exported> events;
  for (const v1::LogEntry& entry : response.batch().events()) {
    Exported e;
    e.offset_ = entry.offset();
    e.hash_ = entry.hash();
    e.prev_hash_ = entry.prev_hash();
    if (!e.record.ParseFromString(entry.record()) || !e.parsed.ParseFromString(e.record.event())) {
      return absl::DataLossError(
          absl::StrCat("export: the record at offset ", entry.offset(), " does not parse"));
    }
    events.push_back(std::move(e));
  }
  return events;
}

absl::Status Validate(const ExportOptions& options) {
  if (options.target.empty() && options.channel == nullptr) {
    return absl::InvalidArgumentError("export: target is required");
  }
  if (options.bearer_token.empty()) {
    return absl::InvalidArgumentError("export: bearer_token is required");
  }
  if (options.checkpoint_path.empty()) {
    return absl::InvalidArgumentError("export: checkpoint_path is required");
  }
  if (options.output_path.empty() == (options.output == nullptr)) {
    return absl::InvalidArgumentError("export: give exactly one of output_path and output");
  }
  if (!options.output_path.empty() && options.output_path == options.checkpoint_path) {
    return absl::InvalidArgumentError("export: output_path and checkpoint_path are one file");
  }
  if (options.checkpoint_every == 0) {
    return absl::InvalidArgumentError("export: checkpoint_every must be at least 1");
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<ExportFormat> ParseExportFormat(absl::string_view name) {
  if (name == "jsonl") return ExportFormat::kJsonl;
  if (name == "csv") return ExportFormat::kCsv;
  return absl::InvalidArgumentError(
      absl::StrCat("export format: want jsonl or csv, got \"", name, "\""));
}

const std::vector<std::string>& CsvColumns() {
  static const auto* const columns = new std::vector<std::string>{
      "offset",      "received_at", "event_id",    "device_id",    "device_seq", "kind",
      "subject_kind", "subject_id", "area_code",   "county_code",  "actor",      "relayed_by",
      "hlc",         "adopted_hlc", "hlc_flagged", "device_time",  "lat",        "lng",
      "accuracy_m",  "fix_time",    "hash",        "prev_hash",    "body"};
  return *columns;
}

absl::StatusOr<ExportResult> ExportEvents(const ExportOptions& options) {
  if (absl::Status valid = Validate(options); !valid.ok()) return valid;
  ExportResult result;
  Checkpoint checkpoint;
  absl::StatusOr<Checkpoint> found = ReadCheckpoint(options.checkpoint_path);
  if (found.ok()) {
    if (found->format != options.format) {
      return absl::FailedPreconditionError(absl::StrCat(
          "checkpoint ", options.checkpoint_path, " belongs to a ", FormatName(found->format),
          " export; this run asks for ", FormatName(options.format)));
    }
    checkpoint = *found;
    result.resumed = true;
  } else if (absl::IsNotFound(found.status())) {
    checkpoint.format = options.format;
    checkpoint.last_offset = options.from_offset;
  } else {
    return found.status();
  }

  std::unique_ptr<Sink> sink;
  if (!options.output_path.empty()) {
    auto file = std::make_unique<FileSink>();
    absl::Status opened = file->Open(options.output_path,
                                     result.resumed ? std::optional<uint64_t>(checkpoint.output_bytes)
                                                    : std::nullopt);
    if (!opened.ok()) return opened;
    sink = std::move(file);
  } else {
    sink = std::make_unique<StreamSink>(options.output, checkpoint.output_bytes);
  }
  ExportProgress progress{.events_written = 0, .last_offset = checkpoint.last_offset};
  const uint64_t events_before = checkpoint.events;
  // Output first, then the checkpoint that counts it.
  auto commit = [&]() -> absl::Status {
    if (absl::Status synced = sink->Sync(); !synced.ok()) return synced;
    checkpoint.output_bytes = sink->bytes();
    checkpoint.last_offset = progress.last_offset;
    checkpoint.events = events_before + progress.events_written;
    if (absl::Status written = WriteCheckpoint(options.checkpoint_path, checkpoint);
        !written.ok()) {
      return written;
    }
    if (options.progress) options.progress(progress);
    return absl::OkStatus();
  };
  if (options.format == ExportFormat::kCsv && sink->bytes() == 0) {
    if (absl::Status header = sink->Write(absl::StrCat(absl::StrJoin(CsvColumns(), ","), "\r\n"));
        !header.ok()) {
      return header;
    }
  }
  if (absl::Status first = commit(); !first.ok()) return first;

  std::shared_ptr<grpc::Channel> channel = options.channel;
  if (channel == nullptr) {
    channel = grpc::CreateChannel(options.target, options.credentials != nullptr
                                                      ? options.credentials
                                                      : grpc::InsecureChannelCredentials());
  }
  auto stub = v1::StreamService::NewStub(channel);
  grpc::ClientContext context;
  context.AddMetadata("authorization", absl::StrCat("Bearer ", options.bearer_token));
  v1::SubscribeRequest request;
  request.set_from_offset(checkpoint.last_offset);
  for (v1::EventKind kind : options.kinds) request.add_kinds(kind);
  for (const std::string& prefix : options.scope_prefixes) request.add_scope_prefixes(prefix);
  std::unique_ptr<grpc::ClientReader<v1::SubscribeResponse>> reader =
      stub->Subscribe(&context, request);

  absl::Status failure;
  bool stopped = false;  // By us: caught up or max_events.
  uint64_t since_checkpoint = 0;
  v1::SubscribeResponse response;
  while (!stopped && reader->Read(&response)) {
    absl::StatusOr<std::vector<Exported>> events = EventsOf(response);
    if (!events.ok()) {
      failure = events.status();
      break;
    }
    for (const Exported* event = events->data(); event != events->data() + events->size();
         ++event) {
      // At-least-once stream: an offset already written is never written again.
      if (event->offset() <= progress.last_offset) continue;
      failure = sink->Write(Format(options.format, *event));
      if (!failure.ok()) break;
      progress.last_offset = event->offset();
      ++progress.events_written;
      if (++since_checkpoint >= options.checkpoint_every) {
        failure = commit();
        if (!failure.ok()) break;
        since_checkpoint = 0;
      }
      if (options.max_events != 0 && progress.events_written >= options.max_events) {
        stopped = true;
        break;
      }
    }
    if (!failure.ok()) break;
    if (stopped) break;
    // Every matching event up to the head was sent (and so written).
    if (response.has_caught_up()) {
      progress.head_offset = response.caught_up().head_offset();
      progress.last_offset = std::max(progress.last_offset, progress.head_offset);
      if (!options.follow) stopped = true;
    } else if (response.has_heartbeat()) {
      progress.head_offset = response.heartbeat().head_offset();
      progress.last_offset = std::max(progress.last_offset, progress.head_offset);
    }
  }
  if (stopped || !failure.ok()) context.TryCancel();
  grpc::Status finished = reader->Finish();
  if (failure.ok() && !stopped) failure = FromGrpc(finished);
  if (failure.ok() && !stopped) failure = absl::UnavailableError("server: the stream ended");
  // Whatever happened, what was written is counted, so a rerun continues.
  if (absl::Status committed = commit(); !committed.ok() && failure.ok()) failure = committed;
  result.events_written = progress.events_written;
  result.last_offset = progress.last_offset;
  if (!stopped) return failure;
  if (!failure.ok()) return failure;
  return result;
}

}  // namespace fieldsync::clients
