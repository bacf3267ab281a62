#include "server/base/metrics.h"

#include <algorithm>
#include <charconv>
#include <cmath>

#include "absl/strings/str_cat.h"

namespace varscope::server::metrics {
std::string FormatNumber(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  const double magnitude = std::fabs(value);
  const std::chars_format format =
      value == 0 || (magnitude >= 1e-4 && magnitude < 1e15)
          ? std::chars_format::fixed
          : std::chars_format::scientific;
  char buffer[64];
  const auto result =
      std::to_chars(buffer, buffer + sizeof(buffer), value, format);
  return std::string(buffer, result.ptr);
}

namespace {

std::string EscapeLabelValue(const std::string& value) {
  std::string out;
  for (const char c : value) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string EscapeHelp(const std::string& help) {
  std::string out;
  for (const char c : help) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

// `{a="x",b="y"}`, or "" for no labels.
std::string LabelText(const Labels& labels) {
  if (labels.empty()) return "";
  std::string out = "{";
  for (size_t i = 0; i < labels.size(); ++i) {
    absl::StrAppend(&out, i == 0 ? "" : ",", labels[i].first, "=\"",
                    EscapeLabelValue(labels[i].second), "\"");
  }
  out += "}";
  return out;
}

class TextWriter final : public SeriesWriter {
 public:
  TextWriter(const std::string& name, std::string* out)
      : name_(name), out_(out) {}

  void Value(const Labels& labels, double value) override {
    absl::StrAppend(out_, name_, LabelText(labels), " ", FormatNumber(value),
                    "\n");
  }

  void Histogram(const Labels& labels,
                 const Histogram::Snapshot& snapshot) override {
    Labels with_le = labels;
    with_le.emplace_back("le", "");
    for (size_t i = 0; i < snapshot.cumulative.size(); ++i) {
      with_le.back().second = i < snapshot.bounds.size()
                                  ? FormatNumber(snapshot.bounds[i])
                                  : std::string("+Inf");
      absl::StrAppend(out_, name_, "_bucket", LabelText(with_le), " ",
                      snapshot.cumulative[i], "\n");
    }
    absl::StrAppend(out_, name_, "_sum", LabelText(labels), " ",
                    FormatNumber(snapshot.sum), "\n");
    absl::StrAppend(out_, name_, "_count", LabelText(labels), " ",
                    snapshot.cumulative.back(), "\n");
  }

 private:
  const std::string& name_;
  std::string* const out_;
};

constexpr const char* kTypeNames[] = {"counter", "gauge", "histogram"};

}  // namespace

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)),
      buckets_(new std::atomic<uint64_t>[bounds_.size() + 1]) {
  for (size_t i = 0; i <= bounds_.size(); ++i) buckets_[i] = 0;
}

void Histogram::Observe(double value) {
  const size_t bucket = static_cast<size_t>(
      std::lower_bound(bounds_.begin(), bounds_.end(), value) -
      bounds_.begin());
  buckets_[bucket].fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(value, std::memory_order_relaxed);
}

Histogram::Snapshot Histogram::Read() const {
  Snapshot snapshot;
  snapshot.bounds = bounds_;
  uint64_t total = 0;
  for (size_t i = 0; i <= bounds_.size(); ++i) {
    total += buckets_[i].load(std::memory_order_relaxed);
    snapshot.cumulative.push_back(total);
  }
  snapshot.sum = sum_.load(std::memory_order_relaxed);
  return snapshot;
}

std::vector<double> LatencyBuckets() {
  return {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
          0.05,   0.1,     0.25,   0.5,   1,      2.5,   5,    10};
}

void Registry::Add(std::string name, Type type, std::string help,
                   std::function<void(SeriesWriter&)> collect) {
  families_.push_back(
      {std::move(name), type, std::move(help), std::move(collect)});
}

void Registry::AddCounter(std::string name, std::string help,
                          const Counter& metric) {
  Add(std::move(name), Type::kCounter, std::move(help),
      [&metric](SeriesWriter& w) { w.Value({}, metric.value()); });
}

void Registry::AddHistogram(std::string name, std::string help,
                            const Histogram& metric) {
  Add(std::move(name), Type::kHistogram, std::move(help),
      [&metric](SeriesWriter& w) { w.Histogram({}, metric.Read()); });
}

void Registry::AddValue(std::string name, Type type, std::string help,
                        std::function<double()> value) {
  Add(std::move(name), type, std::move(help),
      [value = std::move(value)](SeriesWriter& w) { w.Value({}, value()); });
}

std::string Registry::Exposition() const {
  std::string out;
  for (const Family& family : families_) {
    std::string series;
    TextWriter writer(family.name, &series);
    family.collect(writer);
    if (series.empty()) continue;
    absl::StrAppend(&out, "# HELP ", family.name, " ", EscapeHelp(family.help),
                    "\n# TYPE ", family.name, " ",
                    kTypeNames[static_cast<int>(family.type)], "\n", series);
  }
  return out;
}

std::vector<std::string> Registry::Names() const {
  std::vector<std::string> names;
  for (const Family& family : families_) names.push_back(family.name);
  return names;
}

}  // namespace varscope::server::metrics
