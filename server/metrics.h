// A small Prometheus metrics registry for fieldsyncd, rendered in the text
// exposition format (version 0.0.4) on the /metrics page.
//
// Metric families are created once (at startup) and then updated from any
// thread; every method is thread-safe. Label values are escaped on rendering.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"

namespace fieldsync::server {

// A monotonically increasing count per label set.
class CounterFamily {
 public:
  virtual ~CounterFamily() = default;
  // `labels` are values, in the order of the family's label names.
  virtual void Increment(const std::vector<std::string>& labels, double by = 1) = 0;
};

// Observations bucketed by upper bound, per label set.
class HistogramFamily {
 public:
  virtual ~HistogramFamily() = default;
  virtual void Observe(const std::vector<std::string>& labels, double value) = 0;
};

class MetricsRegistry {
 public:
  MetricsRegistry();
  ~MetricsRegistry();

  // Each returns a family owned by the registry, alive as long as it is.
  // `name` follows Prometheus naming (fieldsync_..._total for counters,
  // ..._seconds for times); `help` is one line.
  CounterFamily* Counter(const std::string& name, const std::string& help,
                         std::vector<std::string> label_names);
  HistogramFamily* Histogram(const std::string& name, const std::string& help,
                             std::vector<std::string> label_names, std::vector<double> buckets);
  // A gauge whose value is read by `read` at every scrape; `read` must be
  // thread-safe and quick.
  void Gauge(const std::string& name, const std::string& help, std::function<double()> read);

  // The whole registry in the Prometheus text format.
  std::string Render() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Latency buckets in seconds, from 0.5 ms to 10 s.
std::vector<double> LatencyBuckets();

}  // namespace fieldsync::server
