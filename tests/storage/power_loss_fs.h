// PowerLossFs: a rocksdb::FileSystem over the real one that can simulate a
// power cut. It remembers what is not durable yet: per file, the bytes
// written since its last Sync/Fsync; per directory, the files created,
// renamed and deleted since its last Fsync. Cut() makes every later write,
// sync and directory change fail without reaching the disk (the machine is
// off); once the store using it is gone, LoseUnsyncedData() puts the files
// into the state a power cut leaves: unsynced tails truncated, unsynced
// creations removed, unsynced renames and deletions undone. Then the store
// may be opened again on the same PowerLossFs.
//
// Deleted files are kept (moved into `trash_dir`, on the same file system)
// until their directory is synced, so that a deletion can be undone.
// Thread-safe: every operation that changes durable state runs under one
// mutex, so a sync is either before the cut (and durable) or after it (and
// failed).
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "rocksdb/file_system.h"

namespace fieldsync::storage::test {

class PowerLossFs final : public rocksdb::FileSystemWrapper {
 public:
  // `trash_dir` must exist, on the same file system as the store.
  explicit PowerLossFs(std::string trash_dir);

  const char* Name() const override { return "PowerLossFs"; }

  // The power goes off: every later change fails with IOError.
  void Cut();
  // A disk that refuses writes: every later change fails with `error` (e.g.
  // IOStatus::NoSpace()) until StopFailing, without losing anything.
  void FailWrites(rocksdb::IOStatus error);
  void StopFailing();
  // After a Cut, with no store open: leaves the files as the cut would, and
  // turns the power back on. Returns how many bytes of unsynced tails it
  // dropped (for the test's report).
  uint64_t LoseUnsyncedData();

  rocksdb::IOStatus NewWritableFile(const std::string& fname, const rocksdb::FileOptions& options,
                                    std::unique_ptr<rocksdb::FSWritableFile>* result,
                                    rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus ReopenWritableFile(const std::string& fname,
                                       const rocksdb::FileOptions& options,
                                       std::unique_ptr<rocksdb::FSWritableFile>* result,
                                       rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus ReuseWritableFile(const std::string& fname, const std::string& old_fname,
                                      const rocksdb::FileOptions& options,
                                      std::unique_ptr<rocksdb::FSWritableFile>* result,
                                      rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus NewDirectory(const std::string& name, const rocksdb::IOOptions& options,
                                 std::unique_ptr<rocksdb::FSDirectory>* result,
                                 rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus RenameFile(const std::string& src, const std::string& target,
                               const rocksdb::IOOptions& options,
                               rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus DeleteFile(const std::string& fname, const rocksdb::IOOptions& options,
                               rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus LinkFile(const std::string& src, const std::string& target,
                             const rocksdb::IOOptions& options,
                             rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus Truncate(const std::string& fname, size_t size,
                             const rocksdb::IOOptions& options,
                             rocksdb::IODebugContext* dbg) override;

  // What the file wrappers report. Internal.
  struct FileState {
    uint64_t size = 0;    // Bytes written.
    uint64_t synced = 0;  // Bytes durable.
  };
  rocksdb::IOStatus Appended(const std::shared_ptr<FileState>& file, const rocksdb::Slice& data,
                             const std::function<rocksdb::IOStatus()>& append);
  rocksdb::IOStatus Synced(const std::shared_ptr<FileState>& file,
                           const std::function<rocksdb::IOStatus()>& sync);
  rocksdb::IOStatus Truncated(const std::shared_ptr<FileState>& file, uint64_t size,
                              const std::function<rocksdb::IOStatus()>& truncate);
  rocksdb::IOStatus DirSynced(const std::string& dir, const std::function<rocksdb::IOStatus()>& sync);

 private:
  // A directory change not yet made durable by an Fsync of its directory.
  struct DirChange {
    enum Kind { kCreate, kRename, kDelete } kind = kCreate;
    std::string path = {};   // kCreate: the file; kRename: the new name; kDelete: the file.
    std::string from = {};   // kRename: the old name.
    std::string trash = {};  // kDelete: where the file waits; kRename: a replaced file, or "".
    std::shared_ptr<FileState> state = {};  // kDelete: the deleted file's state.
  };

  rocksdb::IOStatus Dead() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::string TrashPath() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  rocksdb::IOStatus Wrap(const std::string& fname, std::shared_ptr<FileState> state,
                         std::unique_ptr<rocksdb::FSWritableFile>* result);

  const std::string trash_dir_;
  absl::Mutex mu_;
  bool dead_ ABSL_GUARDED_BY(mu_) = false;
  rocksdb::IOStatus dead_error_ ABSL_GUARDED_BY(mu_);
  uint64_t trash_counter_ ABSL_GUARDED_BY(mu_) = 0;
  // Files written through this file system, by path.
  std::map<std::string, std::shared_ptr<FileState>> files_ ABSL_GUARDED_BY(mu_);
  // Unsynced directory changes, by directory, oldest first.
  std::map<std::string, std::vector<DirChange>> pending_ ABSL_GUARDED_BY(mu_);
};

}  // namespace fieldsync::storage::test
