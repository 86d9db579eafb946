// The node key: the Ed25519 key with which fieldsyncd signs the events it
// makes (admin changes), as the node device "node-<hex>".
//
// The key lives in a file beside the store, <data_dir>/node-key (mode 0600,
// like admin-token), never in the store: a backup of the store is then no
// means to forge admin events. The file is created on the first start of a
// store and read on every later start; docs/operations.md "The node key" says
// what to back up and what a lost key means. A store written by an older
// version kept the seed in its projections (auth/node/key): the first start
// under this version writes it to the file and Identity erases it from the
// store.
//
// Thread-safety: NodeKey is immutable and safe for concurrent use.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "storage/event_store.h"
#include "sync/sync_engine.h"

namespace fieldsync::server {

// The file in the data dir that holds the node key (mode 0600).
inline constexpr char kNodeKeyFileName[] = "node-key";

// Ed25519 through OpenSSL 3; the sync engine's signer of server-made events.
class NodeKey final : public sync::EventSigner {
 public:
  // DataLoss if `seed` is not 32 bytes; Internal if OpenSSL refuses it.
  static absl::StatusOr<std::unique_ptr<NodeKey>> FromSeed(std::string node_id,
                                                           std::string_view seed);
  ~NodeKey() override;
  NodeKey(const NodeKey&) = delete;
  NodeKey& operator=(const NodeKey&) = delete;

  const std::string& device_id() const override { return node_id_; }
  // Internal if OpenSSL fails.
  absl::StatusOr<std::string> Sign(std::string_view bytes) const override;
  uint64_t sequence_floor() const override { return sequence_floor_; }

  // The 32-byte Ed25519 public key.
  const std::string& public_key() const { return public_key_; }
  // The 32-byte seed (private), for the key file only.
  const std::string& seed() const { return seed_; }

  // Stores of older versions counted the node's events in its device record
  // (Device.last_device_seq); Identity::Open passes that count here once.
  void set_sequence_floor(uint64_t seq) { sequence_floor_ = seq; }

 private:
  NodeKey(std::string node_id, std::string seed, std::string public_key, void* key);

  const std::string node_id_;
  const std::string seed_;
  const std::string public_key_;
  void* const key_;  // EVP_PKEY*, owned.
  uint64_t sequence_floor_ = 0;
};

// What LoadNodeKey found.
struct LoadedNodeKey {
  std::unique_ptr<NodeKey> key;
  // The store has no node yet (first start): Identity::Open enrolls it.
  bool new_node = false;
  // The store still holds the seed (written by an older version): the key
  // file now holds it too, and Identity::Open erases it from the store.
  bool seed_in_store = false;
};

// The node key of the store at `store`, from <data_dir>/node-key:
//   - store without a node (first start): the key file if there is one (a
//     store restored into an empty data dir keeps its node), else a new key
//     and id written to a new key file (0600, synced, renamed into place);
//   - store with a node: the key file, which must name the same node;
//   - store with a node and its seed (older version), no file: the file is
//     written from the store's seed.
// Errors: FAILED_PRECONDITION for a store whose node has no key file (the
// message says what to restore) or a key file of another node; DATA_LOSS for
// a key file that does not parse; INTERNAL for a file that cannot be written;
// the store's.
absl::StatusOr<LoadedNodeKey> LoadNodeKey(const std::string& data_dir,
                                          const storage::EventStore& store);

}  // namespace fieldsync::server
