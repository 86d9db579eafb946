// Blob uploads belong to the uploading device and to the scope of the events
// that name the blob (issue 7, items 10 and 11): a stranger cannot block,
// append to or reset a device's upload; a hash that no event in the caller's
// scope names is refused; a device's unfinished bytes and its hourly upload
// are bounded; an abandoned partial upload expires and its bytes leave the
// disk (on the reaper's timer and at startup); a revoked device's open upload
// ends. All through gRPC against the in-process server.
#include <chrono>
#include <filesystem>
#include <random>
#include <thread>

#include "absl/strings/match.h"
#include "gtest/gtest.h"
#include "storage/sha256.h"
#include "tests/server/sync_world.h"

namespace fieldsync::testing {
namespace {

std::string Photo(size_t size, uint32_t seed) {
  std::mt19937 random(seed);
  std::string bytes(size, '\0');
  for (char& c : bytes) c = static_cast<char>(random());
  return bytes;
}

std::string Sha(const std::string& content) {
  return storage::DigestBytes(storage::Sha256({content}));
}

// Bytes of the regular files under `dir` (what the disk holds, not a counter).
uint64_t DiskBytes(const std::string& dir) {
  uint64_t total = 0;
  std::error_code ec;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(dir, ec)) {
    std::error_code size_ec;
    if (entry.is_regular_file(size_ec)) total += entry.file_size(size_ec);
  }
  return total;
}

// Sends a header declaring `sha` of `total_size` bytes, then `content`
// [from, to) in chunks of `chunk` bytes, and half-closes.
grpc::Status Upload(v1::SyncService::Stub& stub, const std::string& token, const std::string& sha,
                    uint64_t total_size, const std::string& content, size_t from, size_t to,
                    size_t chunk, v1::UploadBlobResponse* response,
                    std::optional<v1::ErrorDetail>* detail = nullptr) {
  auto context = ServiceHarness::Context(token);
  auto writer = stub.UploadBlob(context.get(), response);
  v1::UploadBlobRequest header;
  header.mutable_header()->set_sha256(sha);
  header.mutable_header()->set_total_size(total_size);
  header.mutable_header()->set_content_type("image/jpeg");
  bool open = writer->Write(header);
  for (size_t offset = from; open && offset < to; offset += chunk) {
    v1::UploadBlobRequest request;
    request.mutable_chunk()->set_offset(offset);
    request.mutable_chunk()->set_data(content.substr(offset, std::min(chunk, to - offset)));
    open = writer->Write(request);
  }
  writer->WritesDone();
  grpc::Status status = writer->Finish();
  if (detail != nullptr) *detail = ErrorDetailIn(*context);
  return status;
}

grpc::Status UploadAll(v1::SyncService::Stub& stub, const std::string& token,
                       const std::string& content, v1::UploadBlobResponse* response,
                       std::optional<v1::ErrorDetail>* detail = nullptr) {
  return Upload(stub, token, Sha(content), content.size(), content, 0, content.size(), 64 << 10,
                response, detail);
}

v1::GetBlobStatusResponse Status(v1::SyncService::Stub& stub, const std::string& token,
                                 const std::string& sha) {
  v1::GetBlobStatusRequest request;
  request.set_sha256(sha);
  v1::GetBlobStatusResponse response;
  auto context = ServiceHarness::Context(token);
  grpc::Status status = stub.GetBlobStatus(context.get(), request, &response);
  EXPECT_TRUE(status.ok()) << status.error_message();
  return response;
}

std::string Describe(const grpc::Status& status) {
  return absl::StrCat(status.error_code(), ": ", status.error_message());
}

class BlobOwnershipTest : public SyncWorld {
 public:
  // The phone (cadre1, linked to kH1) records a visit to kH1 naming `photos`.
  void PushVisitWithPhotos(const std::vector<std::string>& photos) {
    v1::Event visit = phone().Visit(kH1, kV1);
    for (const std::string& photo : photos) {
      visit.mutable_visit_recorded()->add_photo_sha256(Sha(photo));
    }
    phone().Sign(visit);
    MustPush(phone(), {visit});
  }
  bool Stored(const std::string& photo) {
    auto stored = harness().store().GetBlob(Sha(photo));
    return stored.ok() && *stored == photo;
  }
};

TEST_F(BlobOwnershipTest, AStrangerDeclaringAnotherSizeDoesNotBlockThePhotographer) {
  const std::string photo = Photo(200 << 10, 1);
  PushVisitWithPhotos({photo});
  // The township tablet reads the visit (and the hash) and declares the
  // photo with another size, writing one chunk of garbage.
  const std::string garbage = Photo(1 << 10, 2);
  v1::UploadBlobResponse response;
  Upload(sync(), tablet().token(), Sha(photo), photo.size() + 1, garbage, 0, garbage.size(),
         garbage.size(), &response);
  Restart();

  grpc::Status status = UploadAll(sync(), phone().token(), photo, &response);
  ASSERT_TRUE(status.ok()) << Describe(status);
  EXPECT_TRUE(response.complete());
  EXPECT_TRUE(Stored(photo));
}

TEST_F(BlobOwnershipTest, AStrangerCannotAppendToOrResetAPartialUpload) {
  const std::string photo = Photo(300 << 10, 3);
  const std::string sha = Sha(photo);
  PushVisitWithPhotos({photo});
  v1::UploadBlobResponse response;
  ASSERT_TRUE(
      Upload(sync(), phone().token(), sha, photo.size(), photo, 0, 128 << 10, 64 << 10, &response)
          .ok());
  ASSERT_EQ(response.received_bytes(), 128u << 10);
  Restart();  // Ownership is durable.

  // The tablet tries to finish it with garbage, then to start it over.
  const std::string garbage = Photo(photo.size(), 4);
  grpc::Status finish = Upload(sync(), tablet().token(), sha, photo.size(), garbage, 128 << 10,
                               photo.size(), 64 << 10, &response);
  EXPECT_EQ(finish.error_code(), grpc::StatusCode::ALREADY_EXISTS) << Describe(finish);
  EXPECT_TRUE(absl::StrContains(finish.error_message(), "another device is uploading"))
      << finish.error_message();
  grpc::Status reset = Upload(sync(), tablet().token(), sha, photo.size(), garbage, 0, 64 << 10,
                              64 << 10, &response);
  EXPECT_EQ(reset.error_code(), grpc::StatusCode::ALREADY_EXISTS) << Describe(reset);

  // The phone's upload is as it left it, and finishes.
  v1::GetBlobStatusResponse blob = Status(sync(), phone().token(), sha);
  EXPECT_EQ(blob.received_bytes(), 128u << 10);
  EXPECT_EQ(blob.total_size(), photo.size());
  grpc::Status done = Upload(sync(), phone().token(), sha, photo.size(), photo,
                             blob.received_bytes(), photo.size(), 64 << 10, &response);
  ASSERT_TRUE(done.ok()) << Describe(done);
  EXPECT_TRUE(response.complete());
  EXPECT_TRUE(Stored(photo));
}

TEST_F(BlobOwnershipTest, AnUploadOfABlobNoEventInTheCallersScopeNamesIsRefused) {
  const std::string photo = Photo(50 << 10, 5);
  PushVisitWithPhotos({photo});
  v1::UploadBlobResponse response;
  // County B's tablet does not see kH1's visit.
  grpc::Status outside = UploadAll(sync(), county_b().token(), photo, &response);
  EXPECT_EQ(outside.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << Describe(outside);
  EXPECT_TRUE(absl::StrContains(outside.error_message(), "push the event that names it first"))
      << outside.error_message();
  // A blob that no event names at all (1 GiB of those took 20 s before).
  const std::string unnamed = Photo(50 << 10, 6);
  grpc::Status nobody = UploadAll(sync(), phone().token(), unnamed, &response);
  EXPECT_EQ(nobody.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << Describe(nobody);
  EXPECT_FALSE(harness().store().GetBlob(Sha(unnamed)).ok());
  EXPECT_FALSE(harness().store().GetBlob(Sha(photo)).ok());

  // In scope (the township tablet) it is accepted; then it is complete for
  // everyone, idempotently, whatever their scope.
  ASSERT_TRUE(UploadAll(sync(), tablet().token(), photo, &response).ok());
  EXPECT_TRUE(Stored(photo));
  grpc::Status again = UploadAll(sync(), county_b().token(), photo, &response);
  ASSERT_TRUE(again.ok()) << Describe(again);
  EXPECT_TRUE(response.complete());
}

class BlobAllowanceTest : public BlobOwnershipTest {
 public:
  void Configure(v1::ServerConfig& config) override {
    config.mutable_limits()->set_max_partial_blob_bytes_per_device(256 << 10);
  }
};

TEST_F(BlobAllowanceTest, ADevicesUnfinishedUploadsAreBoundedWithAPreciseMessage) {
  const std::string first = Photo(200 << 10, 7);
  const std::string second = Photo(200 << 10, 8);
  PushVisitWithPhotos({first, second});
  v1::UploadBlobResponse response;
  ASSERT_TRUE(Upload(sync(), phone().token(), Sha(first), first.size(), first, 0, 64 << 10,
                     64 << 10, &response)
                  .ok());
  std::optional<v1::ErrorDetail> detail;
  grpc::Status over = UploadAll(sync(), phone().token(), second, &response, &detail);
  EXPECT_EQ(over.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << Describe(over);
  EXPECT_TRUE(
      absl::StrContains(over.error_message(), "limits.max_partial_blob_bytes_per_device=262144"))
      << over.error_message();
  // Told apart without the message: wait (finish or let expire the others).
  ASSERT_TRUE(detail.has_value()) << "no fieldsync-error-bin trailer";
  EXPECT_EQ(detail->action(), v1::ErrorDetail::ACTION_RETRY_LATER);
  EXPECT_EQ(detail->limit(), "limits.max_partial_blob_bytes_per_device");
  EXPECT_EQ(detail->limit_value(), 256u << 10);
  EXPECT_FALSE(harness().store().GetBlob(Sha(second)).ok());

  // Once the first is finished the second fits.
  ASSERT_TRUE(Upload(sync(), phone().token(), Sha(first), first.size(), first, 64 << 10,
                     first.size(), 64 << 10, &response)
                  .ok());
  ASSERT_TRUE(UploadAll(sync(), phone().token(), second, &response).ok());
  EXPECT_TRUE(Stored(first));
  EXPECT_TRUE(Stored(second));
}

TEST_F(BlobAllowanceTest, ABlobOverTheWholeAllowanceIsToldItCanNeverPass) {
  // Under max_blob_bytes, over what a device may hold unfinished: no wait helps.
  const std::string big = Photo(300 << 10, 11);
  PushVisitWithPhotos({big});
  v1::UploadBlobResponse response;
  std::optional<v1::ErrorDetail> detail;
  grpc::Status over = UploadAll(sync(), phone().token(), big, &response, &detail);
  EXPECT_EQ(over.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << Describe(over);
  EXPECT_TRUE(
      absl::StrContains(over.error_message(), "limits.max_partial_blob_bytes_per_device=262144"))
      << over.error_message();
  ASSERT_TRUE(detail.has_value()) << "no fieldsync-error-bin trailer";
  EXPECT_EQ(detail->action(), v1::ErrorDetail::ACTION_MAKE_SMALLER);
  EXPECT_EQ(detail->limit(), "limits.max_partial_blob_bytes_per_device");
  EXPECT_EQ(detail->limit_value(), 256u << 10);
  EXPECT_EQ(detail->requested(), big.size());
  EXPECT_FALSE(harness().store().GetBlob(Sha(big)).ok());
}

class BlobRateTest : public BlobOwnershipTest {
 public:
  void Configure(v1::ServerConfig& config) override {
    config.mutable_limits()->set_blob_upload_bytes_per_device_per_hour(256 << 10);
  }
};

TEST_F(BlobRateTest, ADeviceUploadsAtMostItsHourlyAllowance) {
  const std::string first = Photo(200 << 10, 9);
  const std::string second = Photo(200 << 10, 10);
  PushVisitWithPhotos({first, second});
  v1::UploadBlobResponse response;
  ASSERT_TRUE(UploadAll(sync(), phone().token(), first, &response).ok());
  std::optional<v1::ErrorDetail> detail;
  grpc::Status over = UploadAll(sync(), phone().token(), second, &response, &detail);
  EXPECT_EQ(over.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << Describe(over);
  EXPECT_TRUE(absl::StrContains(over.error_message(),
                                "limits.blob_upload_bytes_per_device_per_hour=262144"))
      << over.error_message();
  // The wait rides in the trailer: at most the hour the allowance refills in.
  ASSERT_TRUE(detail.has_value()) << "no fieldsync-error-bin trailer";
  EXPECT_EQ(detail->action(), v1::ErrorDetail::ACTION_RETRY_LATER);
  EXPECT_EQ(detail->limit(), "limits.blob_upload_bytes_per_device_per_hour");
  EXPECT_EQ(detail->limit_value(), 256u << 10);
  EXPECT_GT(detail->retry_after_ms(), 0u);
  EXPECT_LE(detail->retry_after_ms(), 3600u * 1000u);
  // An hour later the rest goes through, resuming where it stopped.
  harness().clock().Advance(absl::Hours(1));
  const uint64_t from = Status(sync(), phone().token(), Sha(second)).received_bytes();
  grpc::Status later = Upload(sync(), phone().token(), Sha(second), second.size(), second, from,
                              second.size(), 64 << 10, &response);
  ASSERT_TRUE(later.ok()) << Describe(later);
  EXPECT_TRUE(Stored(second));
}

class BlobExpiryTest : public BlobOwnershipTest {
 public:
  void Configure(v1::ServerConfig& config) override {
    config.mutable_limits()->set_partial_blob_ttl_seconds(3600);
    config.mutable_limits()->set_blob_reaper_interval_ms(20);
  }
};

TEST_F(BlobExpiryTest, AnAbandonedPartialUploadExpiresAndItsBytesLeaveTheDisk) {
  const std::string photo = Photo(2 << 20, 11);
  const std::string sha = Sha(photo);
  PushVisitWithPhotos({photo});
  v1::UploadBlobResponse response;
  constexpr size_t kSent = 3 << 19;  // 1.5 MiB of 2.
  ASSERT_TRUE(
      Upload(sync(), phone().token(), sha, photo.size(), photo, 0, kSent, 256 << 10, &response)
          .ok());
  const uint64_t before = DiskBytes(dir_);

  // Not yet: a chunk less than the TTL ago keeps it.
  harness().clock().Advance(absl::Minutes(59));
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // Some reaper rounds.
  EXPECT_EQ(Status(sync(), phone().token(), sha).received_bytes(), kSent);

  harness().clock().Advance(absl::Minutes(2));
  // The reaper runs on a real-time timer: wait for it, bounded.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (Status(sync(), phone().token(), sha).received_bytes() != 0 &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_EQ(Status(sync(), phone().token(), sha).received_bytes(), 0u);
  const uint64_t after = DiskBytes(dir_);
  RecordProperty("data_dir_bytes_before_expiry", std::to_string(before));
  RecordProperty("data_dir_bytes_after_expiry", std::to_string(after));
  EXPECT_LE(after + kSent - (64 << 10), before) << "before " << before << ", after " << after;

  // The photographer can start again from 0.
  ASSERT_TRUE(UploadAll(sync(), phone().token(), photo, &response).ok());
  EXPECT_TRUE(Stored(photo));
}

// The partial's owner and last-chunk time are durable: after a restart it
// still expires on time (the harness's clock starts anew at each start, so
// the startup round sees an earlier time; the timer's round does the work).
TEST_F(BlobExpiryTest, AnAbandonedPartialUploadStillExpiresAfterARestart) {
  const std::string photo = Photo(2 << 20, 12);
  const std::string sha = Sha(photo);
  PushVisitWithPhotos({photo});
  v1::UploadBlobResponse response;
  constexpr size_t kSent = 3 << 19;
  ASSERT_TRUE(
      Upload(sync(), phone().token(), sha, photo.size(), photo, 0, kSent, 256 << 10, &response)
          .ok());
  Restart();
  EXPECT_EQ(Status(sync(), phone().token(), sha).received_bytes(), kSent);
  const uint64_t before = DiskBytes(dir_);

  harness().clock().Advance(absl::Hours(2));
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (Status(sync(), phone().token(), sha).received_bytes() != 0 &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_EQ(Status(sync(), phone().token(), sha).received_bytes(), 0u);
  const uint64_t after = DiskBytes(dir_);
  RecordProperty("data_dir_bytes_before_expiry", std::to_string(before));
  RecordProperty("data_dir_bytes_after_expiry", std::to_string(after));
  EXPECT_LE(after + kSent - (64 << 10), before) << "before " << before << ", after " << after;
}

TEST_F(BlobOwnershipTest, ARevokedPhonesOpenUploadEnds) {
  const std::string photo = Photo(3 << 20, 13);
  const std::string sha = Sha(photo);
  PushVisitWithPhotos({photo});
  constexpr size_t kChunk = 256 << 10;

  v1::UploadBlobResponse response;
  auto context = ServiceHarness::Context(phone().token());
  auto writer = sync().UploadBlob(context.get(), &response);
  v1::UploadBlobRequest header;
  header.mutable_header()->set_sha256(sha);
  header.mutable_header()->set_total_size(photo.size());
  header.mutable_header()->set_content_type("image/jpeg");
  ASSERT_TRUE(writer->Write(header));
  v1::UploadBlobRequest first;
  first.mutable_chunk()->set_offset(0);
  first.mutable_chunk()->set_data(photo.substr(0, kChunk));
  ASSERT_TRUE(writer->Write(first));
  // The first chunk is stored (bounded wait: the write is on the server's
  // blob worker).
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (harness().store().GetBlobStatus(sha)->received_bytes < kChunk &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_EQ(harness().store().GetBlobStatus(sha)->received_bytes, kChunk);

  v1::RevokeDeviceRequest revoke;
  revoke.set_device_id(phone().id());
  revoke.set_reason("phone lost");
  v1::RevokeDeviceResponse revoked;
  auto admin_context = ServiceHarness::Context(admin_token());
  ASSERT_TRUE(admin().RevokeDevice(admin_context.get(), revoke, &revoked).ok());

  bool open = true;
  for (size_t offset = kChunk; open && offset < photo.size(); offset += kChunk) {
    v1::UploadBlobRequest request;
    request.mutable_chunk()->set_offset(offset);
    request.mutable_chunk()->set_data(photo.substr(offset, kChunk));
    open = writer->Write(request);
  }
  writer->WritesDone();
  grpc::Status status = writer->Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED) << Describe(status);
  EXPECT_TRUE(absl::StrContains(status.error_message(), "revoked")) << status.error_message();
  EXPECT_FALSE(harness().store().GetBlob(sha).ok());
  EXPECT_EQ(harness().store().GetBlobStatus(sha)->received_bytes, kChunk);
}

}  // namespace
}  // namespace fieldsync::testing
