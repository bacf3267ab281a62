// varscoped: the Varscope parameter server.
#include <csignal>
#include <cstdio>

#include "CLI/CLI.hpp"
#include "server/server.h"

int main(int argc, char** argv) {
  varscope::server::ServerOptions options;
  CLI::App app{"varscoped: the Varscope parameter server"};
  app.add_option("--listen", options.listen_address,
                 "HOST:PORT to serve on (port 0 picks a free port)")
      ->capture_default_str();
  app.add_option("--data-dir", options.data_dir, "RocksDB data directory")
      ->capture_default_str();
  app.add_flag("--sync", options.storage.sync,
               "fsync the write-ahead log before acknowledging each write "
               "group (survives power loss; slower)");
  app.add_option("--max-variable-bytes", options.table.max_variable_bytes,
                 "largest variable (or part) in bytes")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--chunk-bytes", options.table.chunk_bytes,
                 "target size of a stored chunk (whole rows) for new "
                 "variables")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  CLI11_PARSE(app, argc, argv);

  // Signals are taken synchronously by this thread; every server thread
  // inherits the mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  auto server = varscope::server::Server::Start(options);
  if (!server.ok()) {
    std::fprintf(stderr, "varscoped: %s\n",
                 std::string(server.status().ToString()).c_str());
    return 1;
  }
  const std::string host =
      options.listen_address.substr(0, options.listen_address.rfind(':'));
  std::printf("varscoped serving on %s:%d (data dir %s)\n", host.c_str(),
              (*server)->port(), options.data_dir.c_str());
  std::fflush(stdout);

  int signal = 0;
  sigwait(&signals, &signal);
  std::printf("varscoped: signal %d, draining calls and closing the store\n",
              signal);
  std::fflush(stdout);
  (*server)->Shutdown();
  server->reset();
  return 0;
}
