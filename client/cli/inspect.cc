#include "client/cli/inspect.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "client/cli/format.h"
#include "client/cli/listing.h"
#include "client/cli/values.h"
#include "common/names.h"
#include "common/shape.h"
#include "common/status.h"

namespace varscope::cli {
namespace {

using Json = nlohmann::json;

constexpr int kHistogramBins = 10;
constexpr int kHistogramWidth = 30;
constexpr int64_t kFirstValues = 10;

std::string ListText(const google::protobuf::RepeatedField<int64_t>& values) {
  return absl::StrCat("[", absl::StrJoin(values, ", "), "]");
}

// "variable", "partitioned variable of 2 parts", "part 1 of ...".
std::string KindText(const Variable& v) {
  if (v.partitioned()) {
    return absl::StrCat("partitioned variable of ", v.parts().size(), " parts");
  }
  if (v.info().has_slice()) {
    return absl::StrCat("part ", v.info().slice().part_index(),
                        " of partitioned variable ",
                        v.info().slice().full_name());
  }
  return "variable";
}

Json StatJson(double value) {
  if (std::isfinite(value)) return value;
  return FormatStat(value);
}

std::string Share(int64_t count, int64_t total) {
  const double percent = total == 0 ? 0 : 100.0 * count / total;
  return absl::StrFormat("%.1f%% (%d of %d)", percent, count, total);
}

void PrintField(std::ostream& out, absl::string_view key,
                absl::string_view value) {
  out << absl::StrFormat("%-12s %s\n", key, value);
}

void PrintStatsText(const ValueStats& s, std::ostream& out) {
  out << "\nstatistics (over the " << s.finite << " finite values)\n";
  const std::pair<const char*, double> moments[] = {{"min", s.min},
                                                    {"max", s.max},
                                                    {"mean", s.mean},
                                                    {"std", s.stddev},
                                                    {"l2 norm", s.l2_norm}};
  for (const auto& [key, value] : moments) {
    out << absl::StrFormat("  %-10s %s\n", key, FormatStat(value));
  }
  out << absl::StrFormat("  %-10s %s\n", "zeros", Share(s.zeros, s.elements));
  out << absl::StrFormat("  %-10s %s\n", "nan", Share(s.nans, s.elements));
  out << absl::StrFormat("  %-10s %s\n", "inf", Share(s.infs, s.elements));
  if (s.histogram.empty()) return;
  out << "\nhistogram\n";
  std::vector<std::string> labels;
  size_t width = 0;
  int64_t most = 0;
  for (size_t i = 0; i < s.histogram.size(); ++i) {
    const ValueStats::Bin& bin = s.histogram[i];
    labels.push_back(absl::StrCat("[", FormatStat(bin.low), ", ",
                                  FormatStat(bin.high),
                                  i + 1 == s.histogram.size() ? "]" : ")"));
    width = std::max(width, labels.back().size());
    most = std::max(most, bin.count);
  }
  for (size_t i = 0; i < s.histogram.size(); ++i) {
    const int64_t count = s.histogram[i].count;
    const int64_t bar =
        count == 0 ? 0 : std::max<int64_t>(1, count * kHistogramWidth / most);
    out << absl::StrFormat("  %-*s %-*s %d\n", width, labels[i],
                           kHistogramWidth, std::string(bar, '#'), count);
  }
}

Json StatsJson(const ValueStats& s) {
  Json histogram = Json::array();
  for (const ValueStats::Bin& bin : s.histogram) {
    histogram.push_back({{"low", StatJson(bin.low)},
                         {"high", StatJson(bin.high)},
                         {"count", bin.count}});
  }
  return {{"elements", s.elements},
          {"finite", s.finite},
          {"zeros", s.zeros},
          {"nans", s.nans},
          {"infs", s.infs},
          {"min", StatJson(s.min)},
          {"max", StatJson(s.max)},
          {"mean", StatJson(s.mean)},
          {"std", StatJson(s.stddev)},
          {"l2_norm", StatJson(s.l2_norm)},
          {"histogram", std::move(histogram)}};
}

// A name that diagnose reports, with what get_variable would compare.
struct Candidate {
  std::string name;
  DType dtype = v1::DT_FLOAT;
  std::vector<int64_t> dims;
  size_t distance = 0;
};

// What a scan of every name on the server found about a requested name.
// Each candidate is in the first list it fits, in this order.
struct Findings {
  std::vector<Candidate> outer;      // outer/NAME
  std::vector<Candidate> inner;      // NAME is outer/candidate
  std::vector<Candidate> same_leaf;  // other/LEAF
  std::vector<Candidate> closest;    // small edit distance, nearest first
  std::vector<std::string> parts;    // NAME/part_*
  int64_t under = 0;                 // variables under NAME/, not parts
  std::string first_under;
};

constexpr size_t kMaxListed = 10;
constexpr size_t kMaxClosest = 5;

void AddCapped(std::vector<Candidate>& list, Candidate c) {
  if (list.size() < kMaxListed) list.push_back(std::move(c));
}

bool Closer(const Candidate& a, const Candidate& b) {
  return a.distance != b.distance ? a.distance < b.distance : a.name < b.name;
}

absl::StatusOr<Findings> Scan(const CommandContext& context,
                              const std::string& name) {
  Findings f;
  const absl::string_view leaf = LeafName(name);
  const std::string parts_prefix = absl::StrCat(name, "/part_");
  const std::string as_inner = absl::StrCat("/", name);
  const size_t max_distance = std::clamp<size_t>(name.size() / 3, 2, 5);
  auto consider = [&](const std::string& candidate, DType dtype,
                      std::vector<int64_t> dims) {
    if (candidate == name) return;
    if (absl::StartsWith(candidate, parts_prefix)) {
      if (f.parts.size() < kMaxListed) f.parts.push_back(candidate);
    } else if (IsUnderScope(candidate, name)) {
      if (f.under++ == 0) f.first_under = candidate;
    }
    Candidate c{candidate, dtype, std::move(dims)};
    if (absl::EndsWith(candidate, as_inner)) {
      AddCapped(f.outer, std::move(c));
    } else if (absl::EndsWith(name, absl::StrCat("/", candidate))) {
      AddCapped(f.inner, std::move(c));
    } else if (LeafName(candidate) == leaf) {
      AddCapped(f.same_leaf, std::move(c));
    } else if (std::max(candidate.size(), name.size()) -
                   std::min(candidate.size(), name.size()) <=
               max_distance) {
      c.distance = EditDistance(candidate, name);
      if (c.distance > max_distance) return;
      f.closest.push_back(std::move(c));
      if (f.closest.size() > 4 * kMaxClosest) {
        std::sort(f.closest.begin(), f.closest.end(), Closer);
        f.closest.resize(kMaxClosest);
      }
    }
  };
  VS_RETURN_IF_ERROR(
      ForEachPage(*context.client, "", /*recursive=*/true, context.page_size,
                  [&](const v1::ListVariablesResponse& page) {
                    for (const ListEntry& e : page.entries()) {
                      const v1::VariableInfo& v = e.variable();
                      consider(v.name(), v.dtype(), Dims(v.shape()));
                      if (v.has_slice() && v.slice().part_index() == 0) {
                        consider(v.slice().full_name(), v.dtype(),
                                 Dims(v.slice().full_shape()));
                      }
                    }
                    return absl::OkStatus();
                  }));
  std::sort(f.closest.begin(), f.closest.end(), Closer);
  if (f.closest.size() > kMaxClosest) f.closest.resize(kMaxClosest);
  return f;
}

std::string CallText(const DiagnoseOptions& options) {
  std::string call = absl::StrCat("get_variable(\"", options.name, "\"");
  if (options.shape.has_value()) {
    absl::StrAppend(&call, ", shape=", Shape(*options.shape).ToString());
  }
  if (options.dtype.has_value()) {
    absl::StrAppend(&call, ", dtype=", DTypeName(*options.dtype));
  }
  return absl::StrCat(call, ", reuse=True)");
}

std::string Hint(const std::string& name, const absl::StatusOr<Variable>& found,
                 const absl::Status& verdict, const Findings& f) {
  if (found.ok()) {
    if (verdict.ok()) return "Nothing to fix.";
    return absl::StrCat(
        "The variable exists with dtype ", DTypeName(found->dtype()),
        " and shape ", ShapeString(found->shape()),
        ": pass a compatible shape and dtype, or move the old variable away "
        "(varscope mv) before creating a new one.");
  }
  if (!f.outer.empty()) {
    const std::string& match = f.outer.front().name;
    const std::string outer = match.substr(0, match.size() - name.size() - 1);
    return absl::StrCat(name, " exists as ", match,
                        ": the calling code is missing the outer "
                        "scope '",
                        outer, "'. Enter variable_scope(\"", outer,
                        "\") around it, or ask for ", match, ".");
  }
  if (!f.inner.empty()) {
    const std::string& match = f.inner.front().name;
    const std::string outer = name.substr(0, name.size() - match.size() - 1);
    return absl::StrCat(
        name, " exists as ", match, ", outside scope '", outer,
        "': the variable was created outside variable_scope(\"", outer,
        "\"), or the calling code enters that scope once too often.");
  }
  if (f.under > 0) {
    return absl::StrCat(name, " is a scope holding ", VariablesText(f.under),
                        " (e.g. ", f.first_under, "), not a variable.");
  }
  if (!f.same_leaf.empty()) {
    return absl::StrCat("Variables named '", LeafName(name),
                        "' exist in other scopes (above): check which scope "
                        "the calling code runs in.");
  }
  if (!f.closest.empty()) {
    return absl::StrCat("Did you mean ", f.closest.front().name, "?");
  }
  return "Nothing similar exists on this server: create the variable first "
         "(reuse=False or reuse=tf.AUTO_REUSE), or check --server.";
}

void PrintCandidates(std::ostream& out, absl::string_view title,
                     const std::vector<Candidate>& list) {
  if (list.empty()) return;
  out << "\n" << title << ":\n";
  for (const Candidate& c : list) {
    out << "  " << c.name << "  " << DTypeName(c.dtype) << " "
        << ShapeString(c.dims);
    if (c.distance > 0) out << "  (edit distance " << c.distance << ")";
    out << "\n";
  }
}

Json CandidatesJson(const std::vector<Candidate>& list) {
  Json out = Json::array();
  for (const Candidate& c : list) {
    Json item = {{"name", c.name},
                 {"dtype", std::string(DTypeName(c.dtype))},
                 {"shape", c.dims}};
    if (c.distance > 0) item["distance"] = c.distance;
    out.push_back(std::move(item));
  }
  return out;
}

}  // namespace

namespace {

// Show of an embedding variable: its options, keys in memory and on disk,
// admission and eviction counters, and the hottest keys.
absl::Status ShowEmbedding(const CommandContext& context,
                           const v1::VariableInfo& info, int hottest) {
  VS_ASSIGN_OR_RETURN(const v1::EmbeddingStats stats,
                      context.client->EmbeddingStat(info.name(), hottest));
  const v1::EmbeddingOptions& options = info.embedding();
  std::ostream& out = *context.out;
  if (context.json) {
    Json j = VariableInfoToJson(info);
    j["kind"] = "embedding";
    j["embedding_dim"] = options.embedding_dim();
    j["key_dtype"] = DTypeName(options.key_dtype());
    j["filter_freq"] = options.filter_freq();
    j["steps_to_live"] = options.steps_to_live();
    for (const auto& [key, value] :
         {std::pair<const char*, int64_t>{"keys", stats.size()},
          {"memory_keys", stats.memory_keys()},
          {"disk_keys", stats.disk_keys()},
          {"memory_bytes", stats.memory_bytes()},
          {"disk_bytes", stats.disk_bytes()},
          {"candidates", stats.candidates()},
          {"admitted", stats.admitted()},
          {"filtered", stats.filtered()},
          {"evicted", stats.evicted()},
          {"global_step", stats.global_step()}}) {
      j[key] = value;
    }
    Json hot = Json::array();
    for (const auto& h : stats.hottest()) {
      hot.push_back({{"key", h.key()}, {"frequency", h.frequency()}});
    }
    j["hottest"] = std::move(hot);
    out << DumpJson(j) << "\n";
    return absl::OkStatus();
  }
  PrintField(out, "name", info.name());
  PrintField(out, "kind", "embedding variable");
  PrintField(out, "embedding_dim", absl::StrCat(options.embedding_dim()));
  PrintField(out, "dtype",
             absl::StrCat(DTypeName(info.dtype()), " (keys ",
                          DTypeName(options.key_dtype()), ")"));
  PrintField(out, "initializer", InitializerText(info.initializer()));
  PrintField(out, "admission",
             options.filter_freq() > 1
                 ? absl::StrCat(
                       "CounterFilter(filter_freq=", options.filter_freq(), ")")
                 : "every key");
  PrintField(out, "eviction",
             options.steps_to_live() > 0
                 ? absl::StrCat("GlobalStepEvict(steps_to_live=",
                                options.steps_to_live(), ")")
                 : "never");
  PrintField(out, "keys", absl::StrCat(stats.size()));
  PrintField(out, "in memory",
             absl::StrCat(stats.memory_keys(), " keys, ",
                          HumanBytes(stats.memory_bytes())));
  PrintField(out, "on disk only",
             absl::StrCat(stats.disk_keys(), " keys, ",
                          HumanBytes(stats.disk_bytes())));
  PrintField(out, "admitted",
             absl::StrCat(stats.admitted(), " (", stats.candidates(),
                          " keys below the frequency, ", stats.filtered(),
                          " filtered)"));
  PrintField(out, "evicted", absl::StrCat(stats.evicted()));
  PrintField(out, "global step", absl::StrCat(stats.global_step()));
  if (stats.hottest_size() > 0) {
    out << "\nhottest keys\n";
    for (const auto& h : stats.hottest()) {
      out << absl::StrFormat("  %d  frequency %d\n", h.key(), h.frequency());
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status Show(const CommandContext& context, const ShowOptions& options) {
  VS_ASSIGN_OR_RETURN(Variable variable,
                      ResolveVariable(context.client, options.name));
  if (variable.info().has_embedding()) {
    return ShowEmbedding(context, variable.info(), options.hottest);
  }
  VS_ASSIGN_OR_RETURN(Tensor value, variable.Read());
  v1::VariableInfo info = WholeInfo(variable);
  info.set_version(variable.version());
  const ValueStats stats = ComputeStats(value, kHistogramBins);
  std::ostream& out = *context.out;
  if (context.json) {
    Json j = VariableInfoToJson(info);
    j["kind"] = variable.partitioned() ? "partitioned"
                : info.has_slice()     ? "part"
                                       : "variable";
    if (variable.partitioned()) {
      j["partitions"] = variable.partitions();
      Json parts = Json::array();
      for (const Variable& part : variable.parts()) {
        parts.push_back(VariableInfoToJson(part.info()));
      }
      j["parts"] = std::move(parts);
    }
    j["statistics"] = StatsJson(stats);
    if (options.full) {
      j["values"] = ValuesToJson(value);
    } else {
      j["first_values"] = FirstValuesToJson(value, kFirstValues);
    }
    out << DumpJson(j) << "\n";
    return absl::OkStatus();
  }
  PrintField(out, "name", info.name());
  PrintField(out, "kind", KindText(variable));
  PrintField(out, "dtype", DTypeName(info.dtype()));
  PrintField(out, "shape", ShapeText(info.shape()));
  PrintField(out, "elements", absl::StrCat(value.num_elements()));
  PrintField(
      out, "bytes",
      absl::StrCat(HumanBytes(info.byte_size()), " (", info.byte_size(), ")"));
  PrintField(out, "version", absl::StrCat(info.version()));
  PrintField(out, "trainable", info.trainable() ? "true" : "false");
  if (info.has_collections()) {
    PrintField(out, "collections",
               absl::StrJoin(info.collections().names(), ", "));
  }
  PrintField(out, "initializer", InitializerText(info.initializer()));
  PrintField(out, "created", FormatMicros(info.create_time_micros()));
  PrintField(out, "updated", FormatMicros(info.update_time_micros()));
  if (info.has_slice()) {
    const v1::SliceInfo& slice = info.slice();
    PrintField(out, "slice",
               absl::StrCat("offset ", ListText(slice.var_offset()),
                            " in full shape ", ShapeText(slice.full_shape()),
                            ", partitions ", ListText(slice.partitions())));
  }
  if (variable.partitioned()) {
    out << "\nparts (partitions "
        << ListText(variable.parts().front().info().slice().partitions())
        << ")\n";
    for (const Variable& part : variable.parts()) {
      const v1::VariableInfo& p = part.info();
      out << absl::StrFormat("  %s  shape %s  offset %s  version %d  %s\n",
                             p.name(), ShapeText(p.shape()),
                             ListText(p.slice().var_offset()), p.version(),
                             HumanBytes(p.byte_size()));
    }
  }
  PrintStatsText(stats, out);
  if (options.full) {
    out << "\nvalues\n";
    PrintValues(value, out);
    out << "\n";
  } else {
    out << "\nvalues (first " << std::min(kFirstValues, value.num_elements())
        << " of " << value.num_elements() << ")\n"
        << FormatFirstValues(value, kFirstValues) << "\n";
  }
  return absl::OkStatus();
}

absl::Status Get(const CommandContext& context, const GetOptions& options) {
  VS_ASSIGN_OR_RETURN(Variable variable,
                      ResolveVariable(context.client, options.name));
  VS_ASSIGN_OR_RETURN(Tensor value, variable.Read());
  if (context.json) {
    *context.out << DumpJson({{"name", variable.name()},
                              {"dtype", std::string(DTypeName(value.dtype()))},
                              {"shape", value.dims()},
                              {"version", variable.version()},
                              {"values", ValuesToJson(value)}})
                 << "\n";
    return absl::OkStatus();
  }
  PrintValues(value, *context.out);
  *context.out << "\n";
  return absl::OkStatus();
}

absl::Status Diagnose(const CommandContext& context,
                      const DiagnoseOptions& options) {
  const std::string& name = options.name;
  VS_RETURN_IF_ERROR(ValidateName(name));
  const absl::StatusOr<Variable> found = ResolveVariable(context.client, name);
  if (!found.ok() && !absl::IsNotFound(found.status())) return found.status();

  v1::GetVariableRequest request;
  request.set_name(name);
  request.set_mode(v1::REUSE);
  request.set_dtype(
      options.dtype.value_or(found.ok() ? found->dtype() : v1::DT_FLOAT));
  if (options.shape.has_value()) {
    request.mutable_shape()->mutable_dims()->Assign(options.shape->begin(),
                                                    options.shape->end());
  }
  const absl::Status verdict = context.client->GetVariable(request).status();
  if (!verdict.ok() && !absl::IsNotFound(verdict) &&
      !absl::IsInvalidArgument(verdict) &&
      !absl::IsFailedPrecondition(verdict)) {
    return verdict;  // the server could not answer
  }
  VS_ASSIGN_OR_RETURN(const Findings f, Scan(context, name));
  const std::string call = CallText(options);
  const std::string hint = Hint(name, found, verdict, f);

  std::ostream& out = *context.out;
  if (context.json) {
    Json j = {{"name", name},
              {"exists", found.ok()},
              {"call", call},
              {"verdict",
               {{"ok", verdict.ok()},
                {"code", absl::StatusCodeToString(verdict.code())},
                {"message", std::string(verdict.message())}}},
              {"outer_scopes", CandidatesJson(f.outer)},
              {"without_outer_scope", CandidatesJson(f.inner)},
              {"same_leaf", CandidatesJson(f.same_leaf)},
              {"closest", CandidatesJson(f.closest)},
              {"parts", f.parts},
              {"variables_under", f.under},
              {"hint", hint}};
    if (found.ok()) j["variable"] = VariableInfoToJson(WholeInfo(*found));
    out << DumpJson(j) << "\n";
    return verdict;
  }
  if (found.ok()) {
    const v1::VariableInfo info = WholeInfo(*found);
    out << name << " exists: " << KindText(*found) << ", "
        << DTypeName(info.dtype()) << " " << ShapeText(info.shape())
        << ", version " << info.version() << ", "
        << HumanBytes(info.byte_size()) << ".\n";
  } else {
    out << name << " does not exist.\n";
  }
  if (verdict.ok()) {
    out << call << " succeeds.";
    if (!options.shape.has_value() || !options.dtype.has_value()) {
      out << " (Pass --shape and --dtype to check what your code passes.)";
    }
    out << "\n";
  } else {
    out << call << " fails with " << absl::StatusCodeToString(verdict.code())
        << ":\n  " << verdict.message() << "\n";
  }
  PrintCandidates(out, "The same name under outer scopes", f.outer);
  PrintCandidates(out, "The name without its outer scopes", f.inner);
  PrintCandidates(
      out, absl::StrCat("The same leaf '", LeafName(name), "' in other scopes"),
      f.same_leaf);
  PrintCandidates(out, "Closest names", f.closest);
  if (!f.parts.empty()) {
    out << "\nPartitioned parts:\n";
    for (const std::string& p : f.parts) out << "  " << p << "\n";
  }
  if (f.under > 0) {
    out << "\nVariables under " << name << "/: " << f.under << " (e.g. "
        << f.first_under << ")\n";
  }
  out << "\nHint: " << hint << "\n";
  return verdict;
}

}  // namespace varscope::cli
