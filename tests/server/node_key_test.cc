// The node key lives in <data_dir>/node-key (mode 0600), never in the store:
// neither the store nor a backup of it holds the key's bytes, a restart keeps
// the node's identity, a seed an older version kept in the store moves to the
// file and is erased, and a store whose key file is missing or belongs to
// another node does not start. Against the real services on port 0.
#include "server/node_key.h"

#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "fieldsync/v1/admin_service.grpc.pb.h"
#include "gtest/gtest.h"
#include "server/secrets.h"
#include "sync/event_codec.h"
#include "sync/sync_keys.h"
#include "tests/server/service_harness.h"

namespace fieldsync {
namespace {

using ::fieldsync::testing::ServiceHarness;
namespace fs = std::filesystem;

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// The seed in a key file (32 bytes), "" if it has none.
std::string SeedOf(const std::string& file) {
  for (absl::string_view line : absl::StrSplit(file, '\n')) {
    if (absl::ConsumePrefix(&line, "seed ")) return absl::HexStringToBytes(line);
  }
  return "";
}

class NodeKeyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::path(::testing::TempDir()) /
           absl::StrCat("node_key_", getpid(), "_",
                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    ASSERT_TRUE(Start().ok());
    admin_token_ = harness_->admin_token();
  }
  void TearDown() override {
    harness_.reset();
    fs::remove_all(dir_);
  }

  absl::Status Start() {
    harness_.reset();
    absl::StatusOr<std::unique_ptr<ServiceHarness>> harness = ServiceHarness::Start(dir_.string());
    if (!harness.ok()) return harness.status();
    harness_ = *std::move(harness);
    return absl::OkStatus();
  }

  fs::path KeyFile() const { return dir_ / server::kNodeKeyFileName; }

  // The node device's enrollment: the first event of the log.
  sync::LoggedEvent NodeEnrollment() {
    std::vector<sync::LoggedEvent> log = harness_->ReadLog();
    EXPECT_FALSE(log.empty());
    return log.empty() ? sync::LoggedEvent() : log.front();
  }

  grpc::Status UpsertAnalyst(const std::string& id) {
    v1::UpsertUserRequest request;
    request.mutable_user()->set_id(id);
    request.mutable_user()->set_name(id);
    request.mutable_user()->set_role(v1::ROLE_HQ_ANALYST);
    v1::UpsertUserResponse response;
    auto context = ServiceHarness::Context(admin_token_);
    return v1::AdminService::NewStub(harness_->channel())
        ->UpsertUser(context.get(), request, &response);
  }

  // Every file under `root` whose bytes contain `needle`.
  static std::vector<std::string> FilesHolding(const fs::path& root, const std::string& needle) {
    std::vector<std::string> found;
    for (const auto& entry : fs::recursive_directory_iterator(root)) {
      if (!entry.is_regular_file()) continue;
      if (absl::StrContains(ReadFile(entry.path()), needle)) found.push_back(entry.path());
    }
    return found;
  }

  // The node's events, in log order: each must verify with the node's key
  // and follow the last one's device_seq by one.
  void ExpectNodeEventsGapless() {
    const std::string node = NodeEnrollment().event().device_id();
    uint64_t seq = 0;
    for (const sync::LoggedEvent& stored : harness_->ReadLog()) {
      if (stored.event().device_id() != node) continue;
      EXPECT_EQ(stored.event().device_seq(), ++seq) << stored.event().ShortDebugString();
    }
  }

  fs::path dir_;
  std::unique_ptr<ServiceHarness> harness_;
  std::string admin_token_;
};

TEST_F(NodeKeyTest, FirstStartWritesTheKeyFileReadableByTheOwnerOnly) {
  struct stat st {};
  ASSERT_EQ(stat(KeyFile().c_str(), &st), 0) << KeyFile();
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  const std::string file = ReadFile(KeyFile());
  EXPECT_EQ(SeedOf(file).size(), 32u) << file;
  EXPECT_TRUE(absl::StrContains(file, NodeEnrollment().event().device_id())) << file;
}

TEST_F(NodeKeyTest, NeitherTheStoreNorItsBackupHoldsTheKeyBytes) {
  ASSERT_TRUE(UpsertAnalyst("c-1").ok());
  const std::string seed = SeedOf(ReadFile(KeyFile()));
  ASSERT_EQ(seed.size(), 32u);
  const fs::path backups = dir_ / "backups";
  auto backup = harness_->store().Backup(backups.string());
  ASSERT_TRUE(backup.ok()) << backup.status();
  // Closed, so that every byte the store wrote is in its files.
  harness_.reset();
  for (const std::string& needle : {seed, absl::BytesToHexString(seed)}) {
    EXPECT_TRUE(FilesHolding(dir_ / "db", needle).empty());
    EXPECT_TRUE(FilesHolding(backups, needle).empty());
  }
}

TEST_F(NodeKeyTest, ARestartKeepsTheNodeIdentity) {
  const sync::LoggedEvent before = NodeEnrollment();
  const std::string file = ReadFile(KeyFile());
  ASSERT_TRUE(Start().ok());
  EXPECT_EQ(ReadFile(KeyFile()), file);
  ASSERT_TRUE(UpsertAnalyst("c-after-restart").ok());
  std::vector<sync::LoggedEvent> log = harness_->ReadLog();
  ASSERT_EQ(log.front().event().device_id(), before.event().device_id());
  const v1::Event& last = log.back().event();
  EXPECT_EQ(last.device_id(), before.event().device_id());
  ExpectNodeEventsGapless();
}

// A store written before the key file: the seed in the projections
// (auth/node/key) and the node's count in its device record, no engine mark.
TEST_F(NodeKeyTest, ASeedAnOlderVersionKeptInTheStoreMovesToTheFileAndIsErased) {
  ASSERT_TRUE(UpsertAnalyst("c-old").ok());
  const std::string node = NodeEnrollment().event().device_id();
  const std::string file = ReadFile(KeyFile());
  const std::string seed = SeedOf(file);
  uint64_t last_seq = 0;
  for (const sync::LoggedEvent& stored : harness_->ReadLog()) {
    if (stored.event().device_id() == node) last_seq = stored.event().device_seq();
  }
  {
    v1::StoredEvent marker;  // Without event bytes: readers skip it.
    marker.set_actor("test");
    storage::AppendEntry entry;
    entry.event_id = "test/older-version";
    entry.payload = sync::EncodePayload(marker);
    entry.prepare = [&](storage::CommitContext& ctx) -> absl::Status {
      ctx.Put(server::auth_keys::kLegacyNodeKey, seed);
      ctx.Delete(sync::sync_keys::Device(node));
      auto record = ctx.Get(server::dir_keys::Device(node));
      if (!record.ok()) return record.status();
      v1::Device device;
      if (!record->has_value() || !device.ParseFromString(**record)) {
        return absl::DataLossError("no node device record");
      }
      device.set_last_device_seq(last_seq);
      ctx.Put(server::dir_keys::Device(node), device.SerializeAsString());
      return absl::OkStatus();
    };
    std::vector<storage::AppendEntry> entries;
    entries.push_back(std::move(entry));
    ASSERT_TRUE(harness_->store().Append(std::move(entries)).ok());
  }
  harness_.reset();
  fs::remove(KeyFile());

  ASSERT_TRUE(Start().ok());
  EXPECT_EQ(ReadFile(KeyFile()), file);
  auto in_store = harness_->store().GetProjection(server::auth_keys::kLegacyNodeKey);
  ASSERT_TRUE(in_store.ok());
  EXPECT_FALSE(in_store->has_value()) << "the seed is still in the store";
  // The node signs on, numbering after the events it made before.
  ASSERT_TRUE(UpsertAnalyst("c-new").ok());
  EXPECT_EQ(harness_->ReadLog().back().event().device_id(), node);
  ExpectNodeEventsGapless();
}

TEST_F(NodeKeyTest, AStoreWhoseKeyFileIsMissingDoesNotStart) {
  harness_.reset();
  fs::remove(KeyFile());
  absl::Status started = Start();
  EXPECT_EQ(started.code(), absl::StatusCode::kFailedPrecondition) << started;
  EXPECT_TRUE(absl::StrContains(started.message(), "node-key")) << started;
  EXPECT_FALSE(fs::exists(KeyFile())) << "a new key must not replace the lost one";
}

TEST_F(NodeKeyTest, AKeyFileOfAnotherNodeIsRefused) {
  const fs::path other = dir_.string() + "_other";
  fs::remove_all(other);
  {
    auto second = ServiceHarness::Start(other.string());
    ASSERT_TRUE(second.ok()) << second.status();
  }
  harness_.reset();
  fs::copy_file(other / server::kNodeKeyFileName, KeyFile(), fs::copy_options::overwrite_existing);
  fs::remove_all(other);
  absl::Status started = Start();
  EXPECT_EQ(started.code(), absl::StatusCode::kFailedPrecondition) << started;
  EXPECT_TRUE(absl::StrContains(started.message(), "belongs to node")) << started;
}

}  // namespace
}  // namespace fieldsync
