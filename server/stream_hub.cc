#include "server/stream_hub.h"

#include <pthread.h>

#include <algorithm>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "server/stream_reactor.h"

namespace fieldsync::server {

StreamHub::StreamHub(const ServiceContext* ctx) : ctx_(ctx) {
  {
    absl::MutexLock lock(&mu_);
    dispatched_ = ctx_->store->Head();
    recent_from_ = dispatched_;
  }
  listener_id_ = ctx_->store->AddHeadListener([this](uint64_t) { Wake(); });
  thread_ = std::thread([this] { Loop(); });
}

StreamHub::~StreamHub() {
  ctx_->store->RemoveHeadListener(listener_id_);
  {
    absl::MutexLock lock(&wake_mu_);
    stopping_ = true;
  }
  thread_.join();
}

absl::Status StreamHub::TryAdd(SubscribeReactor* reactor) {
  const absl::Time now = ctx_->clock();
  std::vector<SubscribeReactor*> cut;
  absl::Status status;
  {
    absl::MutexLock lock(&mu_);
    size_t open = 0;
    size_t of_user = 0;
    for (SubscribeReactor* other : reactors_) {
      if (other->CutIfStalled(now, ctx_->settings.stream_idle_timeout)) {
        other->Hold();
        cut.push_back(other);
        continue;
      }
      if (!other->HoldsSlot()) continue;
      ++open;
      if (other->user_id() == reactor->user_id()) ++of_user;
    }
    if (open >= ctx_->settings.max_concurrent_streams) {
      status = RetryLater(
          absl::StrCat("limits.max_concurrent_streams=", ctx_->settings.max_concurrent_streams,
                       " streams are open; retry later"),
          "limits.max_concurrent_streams", ctx_->settings.max_concurrent_streams,
          absl::ZeroDuration());
    } else if (of_user >= ctx_->settings.max_streams_per_user) {
      status = RetryLater(
          absl::StrCat("user ", reactor->user_id(), " has ", of_user,
                       " Subscribe streams open, its share limits.max_streams_per_user=",
                       ctx_->settings.max_streams_per_user, "; close one or retry later"),
          "limits.max_streams_per_user", ctx_->settings.max_streams_per_user,
          absl::ZeroDuration());
    } else {
      reactors_.insert(reactor);
    }
  }
  for (SubscribeReactor* other : cut) {
    other->Drive();
    other->Release();
  }
  return status;
}

void StreamHub::Remove(SubscribeReactor* reactor) {
  absl::MutexLock lock(&mu_);
  reactors_.erase(reactor);
}

void StreamHub::Wake() {
  absl::MutexLock lock(&wake_mu_);
  woken_ = true;
}

size_t StreamHub::connected() const {
  absl::MutexLock lock(&mu_);
  return reactors_.size();
}

void StreamHub::Loop() {
  pthread_setname_np(pthread_self(), "stream-hub");  // For top -H and perf.
  bool more = false;
  while (true) {
    {
      absl::MutexLock lock(&wake_mu_);
      auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(wake_mu_) { return woken_ || stopping_; };
      // Waits for a commit (the head listener), a stream asking to go live
      // or ending, or the tick; never to find new records.
      if (!more) wake_mu_.AwaitWithTimeout(absl::Condition(&ready), kTick);
      if (stopping_) return;
      woken_ = false;
    }
    more = Pass();
  }
}

bool StreamHub::Pass() {
  // A snapshot of the streams, each held: from here on no hub lock is held
  // across a store read.
  std::vector<SubscribeReactor*> streams;
  uint64_t after;
  {
    absl::MutexLock lock(&mu_);
    for (SubscribeReactor* reactor : reactors_) {
      reactor->Hold();
      streams.push_back(reactor);
    }
    after = dispatched_;
  }
  const uint64_t head = ctx_->store->Head();
  bool more = false;

  // 1. Dispatch what was committed since the last pass, reading each record
  // once: offered to the live streams, kept in recent_ for streams about to
  // go live. Nobody subscribed: nothing to read.
  if (streams.empty()) {
    absl::MutexLock lock(&mu_);
    dispatched_ = head;
    recent_.clear();
    recent_bytes_ = 0;
    recent_from_ = head;
  }
  size_t dispatched = 0;
  while (!streams.empty() && after < head) {
    if (dispatched >= kDispatchPerPass) {
      more = true;  // Ticks and go-lives are due too; the next pass goes on.
      break;
    }
    const storage::ReadLimits limits{.max_records = kReadRecords, .max_bytes = kReadBytes};
    absl::StatusOr<std::vector<storage::LogRecord>> records = ctx_->store->ReadAfter(after, limits);
    LiveRecords live;
    absl::Status status = records.status();
    if (records.ok()) {
      for (const storage::LogRecord& record : *records) {
        if (record.offset > head) break;
        absl::StatusOr<std::shared_ptr<const LiveRecord>> one = ToLive(record);
        if (!one.ok()) {
          status = one.status();
          break;
        }
        live.push_back(*std::move(one));
      }
    }
    if (!status.ok()) {
      // The log cannot be read: end the live streams (they may resume).
      for (SubscribeReactor* reactor : streams) {
        if (reactor->live()) reactor->RequestFinish(status);
      }
      break;
    }
    const uint64_t through = live.empty() ? head : live.back()->offset;
    for (SubscribeReactor* reactor : streams) {
      if (reactor->live()) reactor->Offer(live, through);
    }
    dispatched += live.size();
    absl::MutexLock lock(&mu_);
    for (std::shared_ptr<const LiveRecord>& record : live) {
      recent_bytes_ += record->stored_event.size();
      recent_.push_back(std::move(record));
    }
    while (recent_.size() > kRecentRecords || recent_bytes_ > kRecentBytes) {
      recent_bytes_ -= recent_.front()->stored_event.size();
      recent_from_ = recent_.front()->offset;
      recent_.pop_front();
    }
    if (recent_.empty()) recent_from_ = through;
    dispatched_ = through;
    after = through;
  }

  // 2. Streams that reached the head go live: the records between where
  // their catch-up ended and dispatched_ (from recent_) first, then the
  // marker. One that fell behind recent_ catches up further from the log.
  for (SubscribeReactor* reactor : streams) {
    std::optional<uint64_t> read_through = reactor->WantsLive();
    if (!read_through) continue;
    LiveRecords gap;
    uint64_t through;
    bool in_memory;
    {
      absl::MutexLock lock(&mu_);
      in_memory = *read_through >= recent_from_;
      through = std::max(dispatched_, *read_through);
      if (in_memory) {
        for (const std::shared_ptr<const LiveRecord>& record : recent_) {
          if (record->offset > *read_through) gap.push_back(record);
        }
      }
    }
    if (in_memory) {
      reactor->GoLive(gap, through);
    } else {
      reactor->KeepCatchingUp();
    }
  }

  // 3. A consumer that stopped reading is cut; draining ends every stream;
  // streams may owe a heartbeat.
  const bool draining = ctx_->state != nullptr && ctx_->state->draining();
  const absl::Time now = ctx_->clock();
  const absl::Duration idle = ctx_->settings.stream_idle_timeout;
  for (SubscribeReactor* reactor : streams) {
    reactor->CutIfStalled(now, idle);
    if (draining) {
      reactor->RequestFinish(absl::UnavailableError(
          "the server is shutting down: resubscribe from the offset of the last event received"));
    }
    reactor->Drive();
    reactor->CancelIfFinishStuck(now, idle);
    reactor->Release();
  }
  return more;
}

}  // namespace fieldsync::server
