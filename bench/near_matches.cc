// What the near matches of a missing name cost at a million names: the
// server's search (NameIndex::NearMatchCandidates, then NearMatches on them),
// per kind of miss, against the exhaustive NearMatches over every name that
// the server ran before. Costs are the thread's CPU time, so that a busy
// machine does not inflate them. Run:
//   build/bench/varscope_near_matches [--names N] [--misses M]
#include <time.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/names.h"

namespace varscope {
namespace {

// CPU time of this thread, in milliseconds.
double CpuMillis() {
  timespec t;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) * 1e3 +
         static_cast<double>(t.tv_nsec) / 1e6;
}

// TensorFlow-style names: layers under towers and blocks, each with its
// variables and Adam slots, plus partitioned embeddings.
std::vector<std::string> ModelNames(int64_t n) {
  static constexpr const char* kLeaves[] = {
      "kernel",      "kernel/Adam",    "kernel/Adam_1", "bias",
      "bias/Adam",   "bias/Adam_1",    "gamma",         "beta",
      "moving_mean", "moving_variance"};
  std::vector<std::string> names;
  for (int64_t layer = 0; static_cast<int64_t>(names.size()) < n; ++layer) {
    const std::string scope =
        absl::StrCat("model/tower_", layer / 10000, "/block_",
                     layer / 100 % 100, "/layer_", layer % 100);
    for (const char* leaf : kLeaves) names.push_back(JoinName(scope, leaf));
    if (layer % 100 == 0) {
      for (int part = 0; part < 16; ++part) {
        names.push_back(
            absl::StrCat("model/embedding_", layer / 100, "/part_", part));
      }
    }
  }
  names.resize(static_cast<size_t>(n));
  return names;
}

// One scope with a million children whose leaves differ only in digits: the
// worst case for the windows of the index.
std::vector<std::string> FlatNames(int64_t n) {
  std::vector<std::string> names;
  for (int64_t i = 0; i < n; ++i) {
    names.push_back(absl::StrCat("features/feature_", i));
  }
  return names;
}

// Missing names of one kind, each with the name it was meant to be ("" when
// none is close).
struct Kind {
  const char* what;
  std::vector<std::pair<std::string, std::string>> misses;
};

// Looks up every miss of `kind`; prints the CPU time per lookup and how many
// answers name the meant name (or, for "", are empty).
void Measure(const NameIndex& index, const Kind& kind) {
  std::vector<double> millis;
  size_t found = 0;
  for (const auto& [miss, meant] : kind.misses) {
    const double start = CpuMillis();
    const std::string help = NearMatches(miss, index.NearMatchCandidates(miss));
    millis.push_back(CpuMillis() - start);
    if (meant.empty() ? help.empty()
                      : absl::StrContains(absl::StrCat(help, ","),
                                          absl::StrCat(" ", meant, ","))) {
      ++found;
    }
  }
  std::sort(millis.begin(), millis.end());
  double mean = 0;
  for (double m : millis) mean += m / static_cast<double>(millis.size());
  std::printf("  %-34s %8.3f %8.3f %8.3f %6zu/%zu\n", kind.what, mean,
              millis[millis.size() * 99 / 100], millis.back(), found,
              millis.size());
}

void Run(const char* set, const std::vector<std::string>& names,
         const std::vector<Kind>& kinds) {
  const double start = CpuMillis();
  NameIndex index;
  for (const std::string& name : names) index.Add(name);
  std::printf("%s: %zu names, index built in %.0f ms\n", set, index.size(),
              CpuMillis() - start);
  std::printf("  %-34s %8s %8s %8s %9s\n", "miss", "mean ms", "p99 ms",
              "max ms", "found");
  for (const Kind& kind : kinds) Measure(index, kind);
  // Every name weighed (the search before the index), one miss.
  const std::string& miss = kinds.front().misses.front().first;
  const double full = CpuMillis();
  const std::string help = NearMatches(miss, names);
  std::printf("  %-34s %8.0f\n", "every name weighed, one miss",
              CpuMillis() - full);
}

}  // namespace
}  // namespace varscope

int main(int argc, char** argv) {
  CLI::App app("Cost of the near matches of a missing name");
  int64_t n = 1'000'000;
  int misses = 1000;
  app.add_option("--names", n, "names in the index");
  app.add_option("--misses", misses, "missing names looked up per kind");
  CLI11_PARSE(app, argc, argv);

  using varscope::JoinName;
  std::vector<varscope::Kind> model = {{"typo at the end of a leaf", {}},
                                       {"typo at the start of a leaf", {}},
                                       {"typos in a scope and its leaf", {}},
                                       {"no similar name", {}}};
  for (int i = 0; i < misses; ++i) {
    const int layer = i * 97 % 10000;
    const std::string scope = absl::StrCat("model/tower_0/block_", layer / 100,
                                           "/layer_", layer % 100);
    model[0].misses.push_back(
        {JoinName(scope, "kernal"), JoinName(scope, "kernel")});
    model[1].misses.push_back(
        {JoinName(scope, "xernel"), JoinName(scope, "kernel")});
    model[2].misses.push_back({absl::StrCat("model/tower_0/blok_", layer / 100,
                                            "/layer_", layer % 100, "/gama"),
                               JoinName(scope, "gamma")});
    model[3].misses.push_back({absl::StrCat("unrelated/name_", i), ""});
  }
  varscope::Run("model", varscope::ModelNames(n), model);

  std::vector<varscope::Kind> flat = {{"typo at the end of a leaf", {}},
                                      {"typo at the start of a leaf", {}}};
  for (int i = 0; i < misses; ++i) {
    const std::string feature =
        absl::StrCat("features/feature_", int64_t{i} * 7919 % n);
    flat[0].misses.push_back({absl::StrCat(feature, "x"), feature});
    std::string start_typo = feature;
    start_typo[9] = 'g';
    flat[1].misses.push_back({start_typo, feature});
  }
  varscope::Run("flat", varscope::FlatNames(n), flat);
  return 0;
}
