#include "server/metrics.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace fieldsync::server {
namespace {

std::string Escape(const std::string& value) {
  std::string out;
  for (char c : value) {
    if (c == '\\' || c == '"') {
      out.push_back('\\');
      out.push_back(c);
    } else if (c == '\n') {
      out.append("\\n");
    } else {
      out.push_back(c);
    }
  }
  return out;
}

std::string FormatNumber(double value) {
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  // The shortest text that reads back as the same double: 0.0005, not
  // 0.00050000000000000001.
  char text[32];
  for (int precision = 6; precision <= 17; ++precision) {
    snprintf(text, sizeof(text), "%.*g", precision, value);
    if (strtod(text, nullptr) == value) break;
  }
  return text;
}

// `{a="x",b="y"}` (empty when there are no labels); `extra` is appended.
std::string LabelText(const std::vector<std::string>& names, const std::vector<std::string>& values,
                      const std::string& extra = "") {
  std::vector<std::string> parts;
  for (size_t i = 0; i < names.size() && i < values.size(); ++i) {
    parts.push_back(absl::StrCat(names[i], "=\"", Escape(values[i]), "\""));
  }
  if (!extra.empty()) parts.push_back(extra);
  if (parts.empty()) return "";
  return absl::StrCat("{", absl::StrJoin(parts, ","), "}");
}

class CounterImpl final : public CounterFamily {
 public:
  CounterImpl(std::string name, std::string help, std::vector<std::string> labels)
      : name_(std::move(name)), help_(std::move(help)), labels_(std::move(labels)) {}

  void Increment(const std::vector<std::string>& labels, double by) override {
    absl::MutexLock lock(&mu_);
    values_[labels] += by;
  }

  void Render(std::string* out) const {
    absl::StrAppend(out, "# HELP ", name_, " ", help_, "\n# TYPE ", name_, " counter\n");
    absl::MutexLock lock(&mu_);
    // A family without labels has exactly one series: show it from the start.
    if (labels_.empty() && values_.empty()) absl::StrAppend(out, name_, " 0\n");
    for (const auto& [labels, value] : values_) {
      absl::StrAppend(out, name_, LabelText(labels_, labels), " ", FormatNumber(value), "\n");
    }
  }

 private:
  const std::string name_, help_;
  const std::vector<std::string> labels_;
  mutable absl::Mutex mu_;
  std::map<std::vector<std::string>, double> values_ ABSL_GUARDED_BY(mu_);
};

class HistogramImpl final : public HistogramFamily {
 public:
  HistogramImpl(std::string name, std::string help, std::vector<std::string> labels,
                std::vector<double> buckets)
      : name_(std::move(name)),
        help_(std::move(help)),
        labels_(std::move(labels)),
        buckets_(std::move(buckets)) {}

  void Observe(const std::vector<std::string>& labels, double value) override {
    absl::MutexLock lock(&mu_);
    Series& series = series_[labels];
    if (series.counts.empty()) series.counts.assign(buckets_.size(), 0);
    for (size_t i = 0; i < buckets_.size(); ++i) {
      if (value <= buckets_[i]) ++series.counts[i];
    }
    ++series.count;
    series.sum += value;
  }

  void Render(std::string* out) const {
    absl::StrAppend(out, "# HELP ", name_, " ", help_, "\n# TYPE ", name_, " histogram\n");
    absl::MutexLock lock(&mu_);
    // A family without labels has exactly one series: show it from the start.
    if (labels_.empty() && series_.empty()) {
      Series empty;
      empty.counts.assign(buckets_.size(), 0);
      RenderSeries({}, empty, out);
    }
    for (const auto& [labels, series] : series_) RenderSeries(labels, series, out);
  }

 private:
  struct Series {
    std::vector<uint64_t> counts;  // Cumulative: observations <= buckets_[i].
    uint64_t count = 0;
    double sum = 0;
  };

  void RenderSeries(const std::vector<std::string>& labels, const Series& series,
                    std::string* out) const {
    for (size_t i = 0; i < buckets_.size(); ++i) {
      absl::StrAppend(
          out, name_, "_bucket",
          LabelText(labels_, labels, absl::StrCat("le=\"", FormatNumber(buckets_[i]), "\"")), " ",
          series.counts[i], "\n");
    }
    absl::StrAppend(out, name_, "_bucket", LabelText(labels_, labels, "le=\"+Inf\""), " ",
                    series.count, "\n");
    absl::StrAppend(out, name_, "_sum", LabelText(labels_, labels), " ", FormatNumber(series.sum),
                    "\n");
    absl::StrAppend(out, name_, "_count", LabelText(labels_, labels), " ", series.count, "\n");
  }

  const std::string name_, help_;
  const std::vector<std::string> labels_;
  const std::vector<double> buckets_;
  mutable absl::Mutex mu_;
  std::map<std::vector<std::string>, Series> series_ ABSL_GUARDED_BY(mu_);
};

struct GaugeEntry {
  std::string name, help;
  std::function<double()> read;
};

}  // namespace

struct MetricsRegistry::Impl {
  absl::Mutex mu;
  std::vector<std::unique_ptr<CounterImpl>> counters ABSL_GUARDED_BY(mu);
  std::vector<std::unique_ptr<HistogramImpl>> histograms ABSL_GUARDED_BY(mu);
  std::vector<GaugeEntry> gauges ABSL_GUARDED_BY(mu);
};

MetricsRegistry::MetricsRegistry() : impl_(std::make_unique<Impl>()) {}
MetricsRegistry::~MetricsRegistry() = default;

CounterFamily* MetricsRegistry::Counter(const std::string& name, const std::string& help,
                                        std::vector<std::string> label_names) {
  absl::MutexLock lock(&impl_->mu);
  impl_->counters.push_back(std::make_unique<CounterImpl>(name, help, std::move(label_names)));
  return impl_->counters.back().get();
}

HistogramFamily* MetricsRegistry::Histogram(const std::string& name, const std::string& help,
                                            std::vector<std::string> label_names,
                                            std::vector<double> buckets) {
  absl::MutexLock lock(&impl_->mu);
  impl_->histograms.push_back(
      std::make_unique<HistogramImpl>(name, help, std::move(label_names), std::move(buckets)));
  return impl_->histograms.back().get();
}

void MetricsRegistry::Gauge(const std::string& name, const std::string& help,
                            std::function<double()> read) {
  absl::MutexLock lock(&impl_->mu);
  impl_->gauges.push_back({name, help, std::move(read)});
}

std::string MetricsRegistry::Render() const {
  std::string out;
  absl::MutexLock lock(&impl_->mu);
  for (const auto& counter : impl_->counters) counter->Render(&out);
  for (const auto& histogram : impl_->histograms) histogram->Render(&out);
  for (const auto& gauge : impl_->gauges) {
    absl::StrAppend(&out, "# HELP ", gauge.name, " ", gauge.help, "\n# TYPE ", gauge.name,
                    " gauge\n", gauge.name, " ", FormatNumber(gauge.read()), "\n");
  }
  return out;
}

std::vector<double> LatencyBuckets() {
  return {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
}

}  // namespace fieldsync::server
