// varscoped: the Varscope parameter server.
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>

#include "CLI/CLI.hpp"
#include "server/server.h"

namespace {

int g_signal_pipe[2];

void OnSignal(int signal) {
  const unsigned char byte = static_cast<unsigned char>(signal);
  (void)!write(g_signal_pipe[1], &byte, 1);
}

}  // namespace

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
  app.add_option("--max-message-bytes", options.max_message_bytes,
                 "largest unary message; larger variables move by streams")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--chunk-bytes", options.table.chunk_bytes,
                 "target size of a stored chunk (whole rows) for new "
                 "variables")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  CLI11_PARSE(app, argc, argv);

  // SIGINT and SIGTERM may arrive on any thread (gRPC starts some before
  // main): the handler only writes the signal number to a pipe that this
  // thread waits on.
  if (pipe(g_signal_pipe) != 0) {
    std::perror("varscoped: pipe");
    return 1;
  }
  struct sigaction action = {};
  action.sa_handler = OnSignal;
  sigemptyset(&action.sa_mask);
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);

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

  unsigned char signal = 0;
  while (read(g_signal_pipe[0], &signal, 1) < 0 && errno == EINTR) {
  }
  std::printf("varscoped: signal %d, draining calls and closing the store\n",
              signal);
  std::fflush(stdout);
  (*server)->Shutdown();
  server->reset();
  return 0;
}
