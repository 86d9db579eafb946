// Offload: how a unary handler moves its blocking part (scope computation,
// scans, signature checks, point reads) off gRPC's callback thread onto the
// context's read executor (ServiceContext::reads, limits.read_threads with a
// queue of limits.read_queue_depth).
//
// The handler runs the guard on the callback thread (a token check: a point
// read of the device, bounded), then hands the rest to Offload. When the
// queue is full the call answers RESOURCE_EXHAUSTED at once, naming the
// setting: the client retries later (a busy server sheds load instead of
// stacking calls without bound). A call cancelled while it waited is answered
// CANCELLED without doing the work.
//
// Thread-safety: the task runs on a pool thread; it must finish the call
// exactly once (FinishOffloaded does) and not touch it afterwards.
#pragma once

#include <functional>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "server/auth.h"
#include "server/bounded_executor.h"
#include "server/service_context.h"

namespace fieldsync::server {

// The answer of a call refused because the read queue is full.
inline absl::Status ReadQueueFull(const BoundedExecutor& reads) {
  // No wait can be promised (the queue drains at the pace of the reads):
  // retry with back-off (retry_after_ms = 0).
  return RetryLater(
      absl::StrCat("server busy: ", reads.queue_capacity(),
                   " calls are waiting for a read thread (limits.read_queue_depth=",
                   reads.queue_capacity(), ", limits.read_threads=", reads.threads(),
                   "); retry later"),
      "limits.read_queue_depth", reads.queue_capacity(), absl::ZeroDuration());
}

// Runs `task` on ctx.reads (inline when the context has no executor: tests of
// a bare context). `task` must finish `call`. Finishes `call` itself only when
// the queue is full or the call was cancelled while waiting.
inline void Offload(const ServiceContext& ctx, GuardedUnary* call,
                    grpc::CallbackServerContext* context, std::function<void()> task) {
  auto run = [call, context, task = std::move(task)] {
    if (context->IsCancelled()) {
      call->Finish(absl::CancelledError("the call was cancelled while it waited for a read thread"));
      return;
    }
    task();
  };
  if (ctx.reads == nullptr) return run();
  if (!ctx.reads->TrySchedule(run)) call->Finish(ReadQueueFull(*ctx.reads));
}

// Offload for a body that answers with a status: `work()` runs on the pool
// and the call finishes with what it returns.
inline void FinishOffloaded(const ServiceContext& ctx, GuardedUnary* call,
                            grpc::CallbackServerContext* context,
                            std::function<absl::Status()> work) {
  Offload(ctx, call, context, [call, work = std::move(work)] { call->Finish(work()); });
}

}  // namespace fieldsync::server
