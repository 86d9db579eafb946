// crash_child <store_dir> <run_id>: the process crash_test kills.
//
// Opens the event store at <store_dir> and appends from 4 threads until it is
// killed: batches of 1..50 events of ~300 bytes with unique ids (made from
// <run_id>), each with a subject and an area code. After every Append that
// returned OK it writes one line per record to stdout (crash_protocol.h), so
// the parent knows what was acknowledged before the kill.
//
// Exits by itself only on an error (non-zero) or after a safety deadline.
#include <errno.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "storage/event_store.h"
#include "tests/storage/crash_protocol.h"

namespace fieldsync::storage {
namespace {

constexpr int kThreads = 4;
// The parent kills within a second; this only ends an orphan.
constexpr absl::Duration kDeadline = absl::Seconds(60);

// Writes all of `data` to stdout, one write(2) after another.
bool WriteAll(const std::string& data) {
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = write(STDOUT_FILENO, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    done += static_cast<size_t>(n);
  }
  return true;
}

// `value` in decimal, left-padded with zeros to `width` digits.
std::string Digits(uint64_t value, size_t width) {
  std::string digits = absl::StrCat(value);
  if (digits.size() < width) digits.insert(0, width - digits.size(), '0');
  return digits;
}

std::string Filler(std::mt19937_64& rng, size_t size) {
  static constexpr char kAlphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789";
  std::string filler(size, ' ');
  for (char& c : filler) c = kAlphabet[rng() % (sizeof(kAlphabet) - 1)];
  return filler;
}

int Run(const std::string& path, uint64_t run_id) {
  absl::StatusOr<std::unique_ptr<EventStore>> opened = OpenEventStore(path);
  if (!opened.ok()) {
    std::fprintf(stderr, "crash_child: open %s: %s\n", path.c_str(),
                 opened.status().ToString().c_str());
    return 3;
  }
  EventStore& store = **opened;
  const absl::Time deadline = absl::Now() + kDeadline;
  std::mutex out_mu;  // One batch's lines go out together.
  std::atomic<bool> failed{false};

  auto append_loop = [&](int thread) {
    std::mt19937_64 rng(run_id * 1000 + static_cast<uint64_t>(thread));
    std::uniform_int_distribution<int> batch_size(1, 50);
    uint64_t seq = 0;
    while (!failed.load() && absl::Now() < deadline) {
      std::vector<AppendEntry> entries;
      std::vector<std::string> ids;
      for (int n = batch_size(rng); n > 0; --n) {
        AppendEntry entry;
        entry.event_id = absl::StrCat("r", run_id, "-t", thread, "-", seq++);
        entry.subject = absl::StrCat("household/", rng() % 1000);
        // One county, 40 townships of 200 villages.
        entry.area_code = absl::StrCat("620102", Digits(rng() % 40, 3), Digits(rng() % 200, 3));
        entry.payload = crash::Payload(entry.event_id, Filler(rng, 280));
        ids.push_back(entry.event_id);
        entries.push_back(std::move(entry));
      }
      absl::StatusOr<std::vector<AppendResult>> results = store.Append(std::move(entries));
      if (!results.ok() || results->size() != ids.size()) {
        std::fprintf(stderr, "crash_child: append: %s\n", results.status().ToString().c_str());
        failed = true;
        return;
      }
      std::string lines;
      for (size_t i = 0; i < ids.size(); ++i) {
        if ((*results)[i].duplicate) {
          std::fprintf(stderr, "crash_child: fresh id %s reported duplicate of %llu\n",
                       ids[i].c_str(), static_cast<unsigned long long>((*results)[i].offset));
          failed = true;
          return;
        }
        lines += crash::AckLine((*results)[i].offset, ids[i]);
      }
      std::lock_guard<std::mutex> lock(out_mu);
      if (!WriteAll(lines)) {
        failed = true;  // The parent is gone.
        return;
      }
    }
  };
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) threads.emplace_back(append_loop, t);
  for (std::thread& thread : threads) thread.join();
  return failed ? 1 : 0;
}

}  // namespace
}  // namespace fieldsync::storage

int main(int argc, char** argv) {
  uint64_t run_id = 0;
  if (argc != 3 || !absl::SimpleAtoi(argv[2], &run_id)) {
    std::fprintf(stderr, "usage: crash_child <store_dir> <run_id>\n");
    return 2;
  }
  return fieldsync::storage::Run(argv[1], run_id);
}
