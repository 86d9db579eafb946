// What a client's bad blob upload answers (issue 8): bytes that do not hash to
// the sha256 the client declared are the client's error (INVALID_ARGUMENT,
// the upload discarded), not DATA_LOSS, which is kept for corruption on the
// server's side; a chunk at the wrong offset of an upload the caller may make
// is FAILED_PRECONDITION naming the offset to resume from. Through gRPC
// against the in-process server.
#include <random>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "storage/sha256.h"
#include "tests/server/sync_world.h"

namespace fieldsync::testing {
namespace {

std::string Bytes(size_t size, uint32_t seed) {
  std::mt19937 random(seed);
  std::string bytes(size, '\0');
  for (char& c : bytes) c = static_cast<char>(random());
  return bytes;
}

std::string Sha(const std::string& content) {
  return storage::DigestBytes(storage::Sha256({content}));
}

struct Chunk {
  uint64_t offset;
  std::string data;
};

// A header declaring `sha` of `total_size` bytes, then `chunks`, half-close.
grpc::Status Upload(v1::SyncService::Stub& stub, const std::string& token, const std::string& sha,
                    uint64_t total_size, const std::vector<Chunk>& chunks) {
  v1::UploadBlobResponse response;
  auto context = ServiceHarness::Context(token);
  auto writer = stub.UploadBlob(context.get(), &response);
  v1::UploadBlobRequest header;
  header.mutable_header()->set_sha256(sha);
  header.mutable_header()->set_total_size(total_size);
  header.mutable_header()->set_content_type("image/jpeg");
  bool open = writer->Write(header);
  for (const Chunk& chunk : chunks) {
    if (!open) break;
    v1::UploadBlobRequest request;
    request.mutable_chunk()->set_offset(chunk.offset);
    request.mutable_chunk()->set_data(chunk.data);
    open = writer->Write(request);
  }
  writer->WritesDone();
  return writer->Finish();
}

class BlobInputTest : public SyncWorld {
 public:
  // The phone (cadre1, linked to kH1) records a visit to kH1 naming `sha`,
  // so that it may upload that blob.
  void PushVisitNaming(const std::string& sha) {
    v1::Event visit = phone().Visit(kH1, kV1);
    visit.mutable_visit_recorded()->add_photo_sha256(sha);
    phone().Sign(visit);
    MustPush(phone(), {visit});
  }
};

TEST_F(BlobInputTest, BytesThatDoNotHashToTheDeclaredSha256AreInvalidArgument) {
  const std::string photo = Bytes(100 << 10, 1);
  PushVisitNaming(Sha(photo));
  // Same size, other bytes: only the hash of the whole can tell.
  const std::string other = Bytes(photo.size(), 2);
  grpc::Status status =
      Upload(sync(), phone().token(), Sha(photo), photo.size(), {{0, other}});
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << status.error_message();
  EXPECT_TRUE(absl::StrContains(status.error_message(), "sha256")) << status.error_message();
  // Discarded: nothing stored, nothing to resume from.
  auto blob = harness().store().GetBlobStatus(Sha(photo));
  ASSERT_TRUE(blob.ok()) << blob.status();
  EXPECT_FALSE(blob->complete);
  EXPECT_EQ(blob->received_bytes, 0u);
  // The right bytes are still welcome afterwards.
  status = Upload(sync(), phone().token(), Sha(photo), photo.size(), {{0, photo}});
  EXPECT_TRUE(status.ok()) << status.error_message();
}

TEST_F(BlobInputTest, AChunkAtTheWrongOffsetIsFailedPreconditionNamingTheExpectedOffset) {
  const std::string photo = Bytes(6, 3);
  PushVisitNaming(Sha(photo));
  grpc::Status status =
      Upload(sync(), phone().token(), Sha(photo), photo.size(), {{2, photo.substr(2, 2)}});
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << status.error_message();
  // It is the offset that is wrong (not the scope): the message says where
  // the upload stands.
  EXPECT_TRUE(absl::StrContains(status.error_message(), "offset")) << status.error_message();
  EXPECT_FALSE(absl::StrContains(status.error_message(), "scope")) << status.error_message();
  auto blob = harness().store().GetBlobStatus(Sha(photo));
  ASSERT_TRUE(blob.ok()) << blob.status();
  EXPECT_EQ(blob->received_bytes, 0u);
}

}  // namespace
}  // namespace fieldsync::testing
