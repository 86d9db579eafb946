// BoundedExecutor (server/bounded_executor.h): a fixed pool with a bounded
// queue. A full queue refuses at once (the handler answers
// RESOURCE_EXHAUSTED); destruction runs what was accepted. No sleeps: tasks
// block on notifications the test releases.
#include "server/bounded_executor.h"

#include <atomic>

#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"
#include "server/offload.h"

namespace fieldsync::server {
namespace {

TEST(BoundedExecutorTest, AFullQueueRefusesTheNextTaskAndRunsTheAcceptedOnes) {
  absl::Notification started, release;
  std::atomic<int> ran{0};
  {
    BoundedExecutor executor(/*threads=*/1, /*queue_capacity=*/2);
    ASSERT_TRUE(executor.TrySchedule([&] {
      started.Notify();
      release.WaitForNotification();
      ++ran;
    }));
    started.WaitForNotification();  // The one thread is busy now.
    EXPECT_TRUE(executor.TrySchedule([&] { ++ran; }));
    EXPECT_TRUE(executor.TrySchedule([&] { ++ran; }));
    EXPECT_EQ(executor.queued(), 2u);
    EXPECT_FALSE(executor.TrySchedule([&] { ran += 100; })) << "the queue holds two";
    release.Notify();
  }  // The destructor runs what is queued, then joins.
  EXPECT_EQ(ran.load(), 3);
}

TEST(BoundedExecutorTest, TheRefusalNamesTheSettings) {
  BoundedExecutor executor(3, 7);
  absl::Status status = ReadQueueFull(executor);
  EXPECT_EQ(status.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(status.message().find("limits.read_queue_depth=7"), std::string::npos)
      << status.message();
  EXPECT_NE(status.message().find("limits.read_threads=3"), std::string::npos)
      << status.message();
}

TEST(BoundedExecutorTest, TasksRunOnThePoolNotOnTheCaller) {
  BoundedExecutor executor(2, 4);
  absl::Notification done;
  std::thread::id ran_on;
  ASSERT_TRUE(executor.TrySchedule([&] {
    ran_on = std::this_thread::get_id();
    done.Notify();
  }));
  done.WaitForNotification();
  EXPECT_NE(ran_on, std::this_thread::get_id());
}

}  // namespace
}  // namespace fieldsync::server
