#include "tests/storage/power_loss_fs.h"

#include <filesystem>
#include <system_error>

#include "absl/strings/str_cat.h"

namespace fieldsync::storage::test {
namespace {

namespace fs = std::filesystem;

std::string DirOf(const std::string& path) {
  return fs::path(path).lexically_normal().parent_path().string();
}

std::string Normal(const std::string& path) { return fs::path(path).lexically_normal().string(); }

// A writable file that reports appends, syncs and truncations to its
// PowerLossFs, which decides what of them is durable.
class PowerLossFile final : public rocksdb::FSWritableFileOwnerWrapper {
 public:
  PowerLossFile(std::unique_ptr<rocksdb::FSWritableFile> file, PowerLossFs* fs,
                std::shared_ptr<PowerLossFs::FileState> state)
      : FSWritableFileOwnerWrapper(std::move(file)), fs_(fs), state_(std::move(state)) {}

  rocksdb::IOStatus Append(const rocksdb::Slice& data, const rocksdb::IOOptions& options,
                           rocksdb::IODebugContext* dbg) override {
    return fs_->Appended(state_, data, [&] { return target()->Append(data, options, dbg); });
  }
  rocksdb::IOStatus Append(const rocksdb::Slice& data, const rocksdb::IOOptions& options,
                           const rocksdb::DataVerificationInfo& info,
                           rocksdb::IODebugContext* dbg) override {
    return fs_->Appended(state_, data, [&] { return target()->Append(data, options, info, dbg); });
  }
  rocksdb::IOStatus PositionedAppend(const rocksdb::Slice&, uint64_t, const rocksdb::IOOptions&,
                                     rocksdb::IODebugContext*) override {
    return rocksdb::IOStatus::NotSupported("PowerLossFs: positioned appends");
  }
  rocksdb::IOStatus PositionedAppend(const rocksdb::Slice&, uint64_t, const rocksdb::IOOptions&,
                                     const rocksdb::DataVerificationInfo&,
                                     rocksdb::IODebugContext*) override {
    return rocksdb::IOStatus::NotSupported("PowerLossFs: positioned appends");
  }
  rocksdb::IOStatus Truncate(uint64_t size, const rocksdb::IOOptions& options,
                             rocksdb::IODebugContext* dbg) override {
    return fs_->Truncated(state_, size, [&] { return target()->Truncate(size, options, dbg); });
  }
  rocksdb::IOStatus Sync(const rocksdb::IOOptions& options, rocksdb::IODebugContext* dbg) override {
    return fs_->Synced(state_, [&] { return target()->Sync(options, dbg); });
  }
  rocksdb::IOStatus Fsync(const rocksdb::IOOptions& options,
                          rocksdb::IODebugContext* dbg) override {
    return fs_->Synced(state_, [&] { return target()->Fsync(options, dbg); });
  }
  // sync_file_range makes no promise about a power cut: not durable here.
  rocksdb::IOStatus RangeSync(uint64_t, uint64_t, const rocksdb::IOOptions&,
                              rocksdb::IODebugContext*) override {
    return rocksdb::IOStatus::OK();
  }
  // Data is only ever handed to the kernel by Append; the OS buffers it.
  rocksdb::IOStatus Flush(const rocksdb::IOOptions& options,
                          rocksdb::IODebugContext* dbg) override {
    return target()->Flush(options, dbg);
  }
  bool IsSyncThreadSafe() const override { return true; }

 private:
  PowerLossFs* const fs_;
  const std::shared_ptr<PowerLossFs::FileState> state_;
};

class PowerLossDir final : public rocksdb::FSDirectoryWrapper {
 public:
  PowerLossDir(std::unique_ptr<rocksdb::FSDirectory> dir, PowerLossFs* fs, std::string name)
      : FSDirectoryWrapper(std::move(dir)), fs_(fs), name_(std::move(name)) {}

  rocksdb::IOStatus Fsync(const rocksdb::IOOptions& options,
                          rocksdb::IODebugContext* dbg) override {
    return fs_->DirSynced(name_, [&] { return FSDirectoryWrapper::Fsync(options, dbg); });
  }
  rocksdb::IOStatus FsyncWithDirOptions(const rocksdb::IOOptions& options,
                                        rocksdb::IODebugContext* dbg,
                                        const rocksdb::DirFsyncOptions& dir_options) override {
    return fs_->DirSynced(
        name_, [&] { return FSDirectoryWrapper::FsyncWithDirOptions(options, dbg, dir_options); });
  }

 private:
  PowerLossFs* const fs_;
  const std::string name_;
};

}  // namespace

PowerLossFs::PowerLossFs(std::string trash_dir)
    : FileSystemWrapper(rocksdb::FileSystem::Default()), trash_dir_(std::move(trash_dir)) {}

void PowerLossFs::Cut() { FailWrites(rocksdb::IOStatus::IOError("PowerLossFs: the power is off")); }

void PowerLossFs::FailWrites(rocksdb::IOStatus error) {
  absl::MutexLock lock(&mu_);
  dead_ = true;
  dead_error_ = std::move(error);
}

void PowerLossFs::StopFailing() {
  absl::MutexLock lock(&mu_);
  dead_ = false;
}

rocksdb::IOStatus PowerLossFs::Dead() const { return dead_error_; }

std::string PowerLossFs::TrashPath() {
  return (fs::path(trash_dir_) / absl::StrCat("deleted-", ++trash_counter_)).string();
}

uint64_t PowerLossFs::LoseUnsyncedData() {
  absl::MutexLock lock(&mu_);
  uint64_t dropped = 0;
  std::error_code ec;
  for (const auto& [path, state] : files_) {
    if (state->size > state->synced && fs::exists(path, ec)) {
      const uint64_t on_disk = fs::file_size(path, ec);
      if (!ec && on_disk > state->synced) {
        dropped += on_disk - state->synced;
        fs::resize_file(path, state->synced, ec);
      }
    }
    state->size = state->synced;
  }
  for (auto& [dir, changes] : pending_) {
    for (auto it = changes.rbegin(); it != changes.rend(); ++it) {
      switch (it->kind) {
        case DirChange::kCreate:
          fs::remove(it->path, ec);
          files_.erase(it->path);
          break;
        case DirChange::kRename:
          fs::rename(it->path, it->from, ec);
          if (auto f = files_.find(it->path); f != files_.end()) {
            auto state = f->second;
            files_.erase(f);
            files_[it->from] = state;
          }
          if (!it->trash.empty()) fs::rename(it->trash, it->path, ec);
          break;
        case DirChange::kDelete:
          fs::rename(it->trash, it->path, ec);
          if (it->state != nullptr) files_[it->path] = it->state;
          break;
      }
    }
  }
  pending_.clear();
  // A file the store never synced is gone now; forget the others' history
  // too: what is on disk is all durable.
  files_.clear();
  dead_ = false;
  return dropped;
}

rocksdb::IOStatus PowerLossFs::Wrap(const std::string& fname, std::shared_ptr<FileState> state,
                                    std::unique_ptr<rocksdb::FSWritableFile>* result) {
  *result = std::make_unique<PowerLossFile>(std::move(*result), this, std::move(state));
  (void)fname;
  return rocksdb::IOStatus::OK();
}

rocksdb::IOStatus PowerLossFs::NewWritableFile(const std::string& fname,
                                               const rocksdb::FileOptions& options,
                                               std::unique_ptr<rocksdb::FSWritableFile>* result,
                                               rocksdb::IODebugContext* dbg) {
  const std::string path = Normal(fname);
  std::shared_ptr<FileState> state;
  {
    absl::MutexLock lock(&mu_);
    if (dead_) return Dead();
    std::error_code ec;
    const bool existed = fs::exists(path, ec);
    rocksdb::IOStatus s = target()->NewWritableFile(fname, options, result, dbg);
    if (!s.ok()) return s;
    state = std::make_shared<FileState>();
    files_[path] = state;
    if (!existed) pending_[DirOf(path)].push_back({.kind = DirChange::kCreate, .path = path});
  }
  return Wrap(path, std::move(state), result);
}

rocksdb::IOStatus PowerLossFs::ReopenWritableFile(const std::string& fname,
                                                  const rocksdb::FileOptions& options,
                                                  std::unique_ptr<rocksdb::FSWritableFile>* result,
                                                  rocksdb::IODebugContext* dbg) {
  const std::string path = Normal(fname);
  std::shared_ptr<FileState> state;
  {
    absl::MutexLock lock(&mu_);
    if (dead_) return Dead();
    std::error_code ec;
    const bool existed = fs::exists(path, ec);
    rocksdb::IOStatus s = target()->ReopenWritableFile(fname, options, result, dbg);
    if (!s.ok()) return s;
    auto it = files_.find(path);
    if (it != files_.end()) {
      state = it->second;
    } else {
      state = std::make_shared<FileState>();
      const uint64_t size = existed ? fs::file_size(path, ec) : 0;
      state->size = state->synced = ec ? 0 : size;
      files_[path] = state;
    }
    if (!existed) pending_[DirOf(path)].push_back({.kind = DirChange::kCreate, .path = path});
  }
  return Wrap(path, std::move(state), result);
}

rocksdb::IOStatus PowerLossFs::ReuseWritableFile(const std::string&, const std::string&,
                                                 const rocksdb::FileOptions&,
                                                 std::unique_ptr<rocksdb::FSWritableFile>*,
                                                 rocksdb::IODebugContext*) {
  // WAL recycling is off in the store; refusing keeps the model simple.
  return rocksdb::IOStatus::NotSupported("PowerLossFs: file reuse");
}

rocksdb::IOStatus PowerLossFs::NewDirectory(const std::string& name,
                                            const rocksdb::IOOptions& options,
                                            std::unique_ptr<rocksdb::FSDirectory>* result,
                                            rocksdb::IODebugContext* dbg) {
  rocksdb::IOStatus s = target()->NewDirectory(name, options, result, dbg);
  if (!s.ok()) return s;
  *result = std::make_unique<PowerLossDir>(std::move(*result), this, Normal(name));
  return s;
}

rocksdb::IOStatus PowerLossFs::RenameFile(const std::string& src, const std::string& target_name,
                                          const rocksdb::IOOptions& options,
                                          rocksdb::IODebugContext* dbg) {
  const std::string from = Normal(src);
  const std::string to = Normal(target_name);
  absl::MutexLock lock(&mu_);
  if (dead_) return Dead();
  std::error_code ec;
  std::string replaced;
  if (fs::exists(to, ec)) {
    // Keep the file being replaced, so the rename can be undone.
    replaced = TrashPath();
    fs::rename(to, replaced, ec);
    if (ec) return rocksdb::IOStatus::IOError("PowerLossFs: keeping a replaced file", ec.message());
  }
  rocksdb::IOStatus s = target()->RenameFile(src, target_name, options, dbg);
  if (!s.ok()) {
    if (!replaced.empty()) fs::rename(replaced, to, ec);
    return s;
  }
  if (auto it = files_.find(from); it != files_.end()) {
    auto state = it->second;
    files_.erase(it);
    files_[to] = state;
  }
  pending_[DirOf(to)].push_back(
      {.kind = DirChange::kRename, .path = to, .from = from, .trash = replaced});
  return s;
}

rocksdb::IOStatus PowerLossFs::DeleteFile(const std::string& fname,
                                          const rocksdb::IOOptions& options,
                                          rocksdb::IODebugContext* dbg) {
  const std::string path = Normal(fname);
  absl::MutexLock lock(&mu_);
  if (dead_) return Dead();
  std::error_code ec;
  if (!fs::exists(path, ec)) return target()->DeleteFile(fname, options, dbg);  // Its error.
  const std::string trash = TrashPath();
  fs::rename(path, trash, ec);
  if (ec) return rocksdb::IOStatus::IOError("PowerLossFs: deleting", ec.message());
  std::shared_ptr<FileState> state;
  if (auto it = files_.find(path); it != files_.end()) {
    state = it->second;
    files_.erase(it);
  }
  pending_[DirOf(path)].push_back(
      {.kind = DirChange::kDelete, .path = path, .trash = trash, .state = std::move(state)});
  return rocksdb::IOStatus::OK();
}

rocksdb::IOStatus PowerLossFs::LinkFile(const std::string& src, const std::string& target_name,
                                        const rocksdb::IOOptions& options,
                                        rocksdb::IODebugContext* dbg) {
  absl::MutexLock lock(&mu_);
  if (dead_) return Dead();
  rocksdb::IOStatus s = target()->LinkFile(src, target_name, options, dbg);
  if (s.ok()) {
    const std::string to = Normal(target_name);
    pending_[DirOf(to)].push_back({.kind = DirChange::kCreate, .path = to});
  }
  return s;
}

rocksdb::IOStatus PowerLossFs::Truncate(const std::string& fname, size_t size,
                                        const rocksdb::IOOptions& options,
                                        rocksdb::IODebugContext* dbg) {
  absl::MutexLock lock(&mu_);
  if (dead_) return Dead();
  rocksdb::IOStatus s = target()->Truncate(fname, size, options, dbg);
  if (s.ok()) {
    if (auto it = files_.find(Normal(fname)); it != files_.end()) {
      it->second->size = std::min<uint64_t>(it->second->size, size);
      it->second->synced = std::min<uint64_t>(it->second->synced, size);
    }
  }
  return s;
}

rocksdb::IOStatus PowerLossFs::Appended(const std::shared_ptr<FileState>& file,
                                        const rocksdb::Slice& data,
                                        const std::function<rocksdb::IOStatus()>& append) {
  absl::MutexLock lock(&mu_);
  if (dead_) return Dead();
  rocksdb::IOStatus s = append();
  if (s.ok()) file->size += data.size();
  return s;
}

rocksdb::IOStatus PowerLossFs::Synced(const std::shared_ptr<FileState>& file,
                                      const std::function<rocksdb::IOStatus()>& sync) {
  absl::MutexLock lock(&mu_);
  if (dead_) return Dead();
  rocksdb::IOStatus s = sync();
  if (s.ok()) file->synced = file->size;
  return s;
}

rocksdb::IOStatus PowerLossFs::Truncated(const std::shared_ptr<FileState>& file, uint64_t size,
                                         const std::function<rocksdb::IOStatus()>& truncate) {
  absl::MutexLock lock(&mu_);
  if (dead_) return Dead();
  rocksdb::IOStatus s = truncate();
  if (s.ok()) {
    file->size = size;
    file->synced = std::min(file->synced, size);
  }
  return s;
}

rocksdb::IOStatus PowerLossFs::DirSynced(const std::string& dir,
                                         const std::function<rocksdb::IOStatus()>& sync) {
  absl::MutexLock lock(&mu_);
  if (dead_) return Dead();
  rocksdb::IOStatus s = sync();
  if (!s.ok()) return s;
  auto it = pending_.find(dir);
  if (it == pending_.end()) return s;
  std::error_code ec;
  for (const DirChange& change : it->second) {
    if (!change.trash.empty()) fs::remove(change.trash, ec);  // Now really gone.
  }
  pending_.erase(it);
  return s;
}

}  // namespace fieldsync::storage::test
