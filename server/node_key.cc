#include "server/node_key.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "base/status_macros.h"
#include "server/secrets.h"
#include "storage/sha256.h"

namespace fieldsync::server {
namespace {

constexpr size_t kSeedBytes = 32;
constexpr size_t kPublicKeyBytes = 32;
constexpr size_t kSignatureBytes = 64;
constexpr char kFileHeader[] =
    "# fieldsync node key: the Ed25519 seed that signs this node's admin events.\n"
    "# Keep it secret (mode 0600) and back it up apart from the store (docs/operations.md).\n";

EVP_PKEY* Pkey(void* key) { return static_cast<EVP_PKEY*>(key); }

std::string KeyFilePath(const std::string& data_dir) {
  return (std::filesystem::path(data_dir) / kNodeKeyFileName).string();
}

absl::Status Errno(const char* what, const std::string& path) {
  return absl::InternalError(absl::StrCat("cannot ", what, " ", path, ": ", std::strerror(errno)));
}

// Writes the key file: a temporary file (0600) synced and renamed into place,
// then the directory synced, so that a crash leaves either no file or a whole
// one.
absl::Status WriteKeyFile(const std::string& data_dir, const NodeKey& key) {
  const std::string path = KeyFilePath(data_dir);
  const std::string temp = path + ".tmp";
  unlink(temp.c_str());
  const int fd = open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) return Errno("create", temp);
  const std::string contents = absl::StrCat(kFileHeader, "node_id ", key.device_id(), "\nseed ",
                                            storage::ToHex(key.seed()), "\n");
  const bool written =
      write(fd, contents.data(), contents.size()) == static_cast<ssize_t>(contents.size()) &&
      fsync(fd) == 0;
  const int saved = errno;
  close(fd);
  if (!written) {
    errno = saved;
    return Errno("write", temp);
  }
  if (rename(temp.c_str(), path.c_str()) != 0) return Errno("rename into", path);
  const int dir = open(data_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir < 0) return Errno("open", data_dir);
  const bool synced = fsync(dir) == 0;
  close(dir);
  if (!synced) return Errno("sync", data_dir);
  return absl::OkStatus();
}

// The key file's node id and seed; nullopt if there is no file.
absl::StatusOr<std::optional<std::pair<std::string, std::string>>> ReadKeyFile(
    const std::string& data_dir) {
  const std::string path = KeyFilePath(data_dir);
  std::error_code error;
  if (!std::filesystem::exists(path, error)) {
    if (error)
      return absl::InternalError(absl::StrCat("cannot stat ", path, ": ", error.message()));
    return std::nullopt;
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) return Errno("read", path);
  std::stringstream text;
  text << in.rdbuf();
  std::string node_id, seed_hex;
  for (absl::string_view line : absl::StrSplit(text.str(), '\n', absl::SkipEmpty())) {
    if (absl::StartsWith(line, "#")) continue;
    if (absl::ConsumePrefix(&line, "node_id ")) {
      node_id = std::string(line);
    } else if (absl::ConsumePrefix(&line, "seed ")) {
      seed_hex = std::string(line);
    } else {
      return absl::DataLossError(absl::StrCat(path, ": unexpected line '", line.substr(0, 40),
                                              "' (want node_id and seed)"));
    }
  }
  // HexStringToBytes does not check its input: round-trip to refuse non-hex.
  const std::string seed =
      seed_hex.size() == 2 * kSeedBytes ? absl::HexStringToBytes(seed_hex) : std::string();
  if (node_id.empty() || seed.size() != kSeedBytes || storage::ToHex(seed) != seed_hex) {
    return absl::DataLossError(
        absl::StrCat(path, ": not a node key file (want node_id and a 64-hex-digit seed)"));
  }
  return std::make_pair(std::move(node_id), std::move(seed));
}

}  // namespace

absl::StatusOr<std::unique_ptr<NodeKey>> NodeKey::FromSeed(std::string node_id,
                                                           std::string_view seed) {
  if (seed.size() != kSeedBytes) {
    return absl::DataLossError(absl::StrCat("the node key of ", node_id, " holds ", seed.size(),
                                            " bytes, not a 32-byte Ed25519 seed"));
  }
  EVP_PKEY* key = EVP_PKEY_new_raw_private_key(
      EVP_PKEY_ED25519, nullptr, reinterpret_cast<const unsigned char*>(seed.data()), seed.size());
  if (key == nullptr) return absl::InternalError("OpenSSL refused the node's Ed25519 seed");
  std::string public_key(kPublicKeyBytes, '\0');
  size_t length = public_key.size();
  if (EVP_PKEY_get_raw_public_key(key, reinterpret_cast<unsigned char*>(public_key.data()),
                                  &length) != 1 ||
      length != kPublicKeyBytes) {
    EVP_PKEY_free(key);
    return absl::InternalError("OpenSSL could not derive the node's Ed25519 public key");
  }
  return std::unique_ptr<NodeKey>(
      new NodeKey(std::move(node_id), std::string(seed), std::move(public_key), key));
}

NodeKey::NodeKey(std::string node_id, std::string seed, std::string public_key, void* key)
    : node_id_(std::move(node_id)),
      seed_(std::move(seed)),
      public_key_(std::move(public_key)),
      key_(key) {}

NodeKey::~NodeKey() { EVP_PKEY_free(Pkey(key_)); }

absl::StatusOr<std::string> NodeKey::Sign(std::string_view bytes) const {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  if (ctx == nullptr) return absl::ResourceExhaustedError("OpenSSL: out of memory");
  std::string signature(kSignatureBytes, '\0');
  size_t length = signature.size();
  const bool ok =
      EVP_DigestSignInit(ctx, nullptr, nullptr, nullptr, Pkey(key_)) == 1 &&
      EVP_DigestSign(ctx, reinterpret_cast<unsigned char*>(signature.data()), &length,
                     reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size()) == 1 &&
      length == kSignatureBytes;
  EVP_MD_CTX_free(ctx);
  if (!ok) return absl::InternalError("OpenSSL: Ed25519 signing failed");
  return signature;
}

absl::StatusOr<LoadedNodeKey> LoadNodeKey(const std::string& data_dir,
                                          const storage::EventStore& store) {
  const std::string path = KeyFilePath(data_dir);
  ASSIGN_OR_RETURN(std::optional<std::string> store_id, store.GetProjection(auth_keys::kNodeId));
  ASSIGN_OR_RETURN(std::optional<std::string> store_seed,
                   store.GetProjection(auth_keys::kLegacyNodeKey));
  ASSIGN_OR_RETURN(auto file, ReadKeyFile(data_dir));
  LoadedNodeKey loaded;
  loaded.new_node = !store_id.has_value();
  loaded.seed_in_store = store_seed.has_value();
  if (file.has_value()) {
    auto& [file_id, seed] = *file;
    if (store_id.has_value() && *store_id != file_id) {
      return absl::FailedPreconditionError(
          absl::StrCat(path, " is the key of node ", file_id, ", but the store belongs to node ",
                       *store_id, ": put that node's key file there"));
    }
    if (store_seed.has_value() && *store_seed != seed) {
      return absl::FailedPreconditionError(absl::StrCat(
          path, " differs from the node key the store holds (auth/node/key): remove one"));
    }
    ASSIGN_OR_RETURN(loaded.key, NodeKey::FromSeed(file_id, seed));
    return loaded;
  }
  if (store_id.has_value()) {
    if (!store_seed.has_value()) {
      return absl::FailedPreconditionError(
          absl::StrCat("the node key file ", path, " of node ", *store_id,
                       " is missing: restore it from where it was backed up (without it this "
                       "node cannot sign admin events; see docs/operations.md \"The node key\")"));
    }
    // An older version's store: the seed moves out into the file.
    ASSIGN_OR_RETURN(loaded.key, NodeKey::FromSeed(*store_id, *store_seed));
  } else {
    ASSIGN_OR_RETURN(loaded.key, NodeKey::FromSeed(absl::StrCat("node-", RandomHex(8)),
                                                   RandomBytes(kSeedBytes)));
  }
  RETURN_IF_ERROR(WriteKeyFile(data_dir, *loaded.key));
  return loaded;
}

}  // namespace fieldsync::server
