// A small Prometheus registry: counters, gauges and fixed-bucket histograms
// updated with atomics (no lock on the hot path), and a Registry that renders
// them in the text exposition format 0.0.4
// (https://prometheus.io/docs/instrumenting/exposition_formats/).
#ifndef VARSCOPE_SERVER_BASE_METRICS_H_
#define VARSCOPE_SERVER_BASE_METRICS_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace varscope::server::metrics {

// Thread-safe.
class Counter {
 public:
  // REQUIRES: amount >= 0.
  void Add(double amount = 1) {
    value_.fetch_add(amount, std::memory_order_relaxed);
  }
  double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

// Thread-safe.
class Gauge {
 public:
  void Set(double value) { value_.store(value, std::memory_order_relaxed); }
  void Add(double amount) {
    value_.fetch_add(amount, std::memory_order_relaxed);
  }
  double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

// Observations counted in buckets with fixed upper bounds. Thread-safe; a
// reader may see an observation in its bucket before it is in the sum.
class Histogram {
 public:
  // `bounds`: the buckets' upper bounds, increasing (+Inf is implied).
  explicit Histogram(std::vector<double> bounds);

  void Observe(double value);

  struct Snapshot {
    std::vector<double> bounds;
    // Cumulative: cumulative[i] observations were <= bounds[i]; the last
    // entry is the count (+Inf).
    std::vector<uint64_t> cumulative;
    double sum = 0;
  };
  Snapshot Read() const;

 private:
  const std::vector<double> bounds_;
  // One more than bounds_: the last counts values above every bound.
  std::unique_ptr<std::atomic<uint64_t>[]> buckets_;
  std::atomic<double> sum_{0};
};

// `value` in the shortest text that reads back as it: plain digits from
// 1e-4 to 1e15 ("12", "0.25"), else scientific ("1e-05"); "+Inf", "-Inf",
// "NaN".
std::string FormatNumber(double value);

// Latency buckets, in seconds: 100 us to 10 s.
std::vector<double> LatencyBuckets();

// Label names and values of one series, in the order given.
using Labels = std::vector<std::pair<std::string, std::string>>;

// Where a collector writes a family's series.
class SeriesWriter {
 public:
  // A counter or gauge series.
  virtual void Value(const Labels& labels, double value) = 0;
  // A histogram series: its _bucket, _sum and _count lines.
  virtual void Histogram(const Labels& labels,
                         const Histogram::Snapshot& snapshot) = 0;

 protected:
  ~SeriesWriter() = default;
};

enum class Type { kCounter, kGauge, kHistogram };

// The metric families to expose, in the order added. Fill it, then read it
// from any number of threads (Add is not thread-safe; Exposition is).
class Registry {
 public:
  // Adds family `name` (a valid metric name; counters end in _total) whose
  // series `collect` writes at each exposition (none is fine: the family is
  // then left out).
  void Add(std::string name, Type type, std::string help,
           std::function<void(SeriesWriter&)> collect);

  // The family `name` of one unlabelled series holding `metric`, which must
  // outlive the registry.
  void AddCounter(std::string name, std::string help, const Counter& metric);
  void AddHistogram(std::string name, std::string help,
                    const Histogram& metric);
  // One unlabelled series whose value `value` returns at each exposition.
  void AddValue(std::string name, Type type, std::string help,
                std::function<double()> value);

  // Every family with its # HELP and # TYPE lines and its series, one
  // "name{label="value",...} value" line each; label values escaped (\\,
  // \", \n), numbers in their shortest exact form ("+Inf", "-Inf", "NaN").
  std::string Exposition() const;

  // The families' names, in order.
  std::vector<std::string> Names() const;

 private:
  struct Family {
    std::string name;
    Type type;
    std::string help;
    std::function<void(SeriesWriter&)> collect;
  };
  std::vector<Family> families_;
};

// The Content-Type of Exposition's text.
inline constexpr char kContentType[] =
    "text/plain; version=0.0.4; charset=utf-8";

}  // namespace varscope::server::metrics

#endif  // VARSCOPE_SERVER_BASE_METRICS_H_
