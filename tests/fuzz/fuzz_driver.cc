// Runs a fuzz target (LLVMFuzzerTestOneInput) without libFuzzer: on
// pseudo-random inputs from fixed seeds, and on the files given (a corpus, or
// a crash input to replay). On a crash or a broken invariant it saves the
// input as `crash-<target>-<label>` in the current directory.
//
//   <target> [-runs=N] [-seed=S] [-max_len=L] [file or directory ...]
//
// -runs: random inputs to run (default 1000, or 0 when files are given);
// input i comes from std::mt19937_64 seeded with S + i (default S = 1);
// -max_len: the longest random input (default 4096).
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

// The input running, for the crash handler.
const uint8_t* g_data = nullptr;
size_t g_size = 0;
char g_crash_path[4096];

void SaveInputAndDie(int signal) {
  const int fd = open(g_crash_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd >= 0) {
    for (size_t done = 0; done < g_size;) {
      const ssize_t n = write(fd, g_data + done, g_size - done);
      if (n <= 0) break;
      done += static_cast<size_t>(n);
    }
    close(fd);
  }
  const char message[] = "fuzz: input saved to ";
  (void)!write(STDERR_FILENO, message, sizeof(message) - 1);
  (void)!write(STDERR_FILENO, g_crash_path, strlen(g_crash_path));
  (void)!write(STDERR_FILENO, "\n", 1);
  ::signal(signal, SIG_DFL);
  raise(signal);
}

void Run(const std::string& target, const std::string& label,
         const std::vector<uint8_t>& input) {
  snprintf(g_crash_path, sizeof(g_crash_path), "crash-%s-%s", target.c_str(),
           label.c_str());
  g_data = input.data();
  g_size = input.size();
  LLVMFuzzerTestOneInput(input.data(), input.size());
}

// Input `seed`: its length, then its bytes, from one generator; lengths
// spread over short and long inputs.
std::vector<uint8_t> RandomInput(uint64_t seed, size_t max_len) {
  std::mt19937_64 rng(seed);
  const size_t limits[] = {16, 128, 1024, max_len};
  const size_t limit = std::min(limits[rng() % 4], max_len);
  std::vector<uint8_t> input(rng() % (limit + 1));
  for (uint8_t& b : input) b = static_cast<uint8_t>(rng());
  return input;
}

std::vector<uint8_t> ReadFile(const std::filesystem::path& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file) {
    fprintf(stderr, "fuzz: cannot read %s\n", path.c_str());
    exit(2);
  }
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(file), {});
}

}  // namespace

int main(int argc, char** argv) {
  const std::string target = std::filesystem::path(argv[0]).filename();
  long long runs = -1;
  uint64_t seed = 1;
  size_t max_len = 4096;
  std::vector<std::filesystem::path> files;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg.rfind("-runs=", 0) == 0) {
      runs = std::stoll(arg.substr(6));
    } else if (arg.rfind("-seed=", 0) == 0) {
      seed = std::stoull(arg.substr(6));
    } else if (arg.rfind("-max_len=", 0) == 0) {
      max_len = std::stoull(arg.substr(9));
    } else if (std::filesystem::is_directory(arg)) {
      for (const auto& entry : std::filesystem::directory_iterator(arg)) {
        if (entry.is_regular_file()) files.push_back(entry.path());
      }
    } else {
      files.push_back(arg);
    }
  }
  std::sort(files.begin(), files.end());
  if (runs < 0) runs = files.empty() ? 1000 : 0;
  for (int signal : {SIGABRT, SIGSEGV, SIGBUS, SIGFPE, SIGILL}) {
    ::signal(signal, SaveInputAndDie);
  }

  const auto start = std::chrono::steady_clock::now();
  for (const auto& file : files) {
    Run(target, file.filename().string(), ReadFile(file));
  }
  for (long long i = 0; i < runs; ++i) {
    Run(target, "seed" + std::to_string(seed + i),
        RandomInput(seed + static_cast<uint64_t>(i), max_len));
  }
  const std::chrono::duration<double> elapsed =
      std::chrono::steady_clock::now() - start;
  printf(
      "%s: %zu files and %lld random inputs (seeds %llu..) passed in %.1f s\n",
      target.c_str(), files.size(), runs, static_cast<unsigned long long>(seed),
      elapsed.count());
  return 0;
}
