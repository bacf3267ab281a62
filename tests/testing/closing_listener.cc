#include "tests/testing/closing_listener.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace varscope::testing {

ClosingListener::ClosingListener() {
  fd_ = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr = {};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  // Inherited by the accepted connections: those this closes first linger
  // in TIME_WAIT on the port, and without it they keep a server that
  // takes the port over after Close from binding it (EADDRINUSE).
  const int reuse = 1;
  if (fd_ < 0 ||
      setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &reuse, sizeof(reuse)) != 0 ||
      bind(fd_, reinterpret_cast<sockaddr*>(&addr), len) != 0 ||
      listen(fd_, 64) != 0 ||
      getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    ADD_FAILURE() << "ClosingListener: " << strerror(errno);
    return;
  }
  port_ = ntohs(addr.sin_port);
  acceptor_ = std::thread([this] {
    // accept fails once Close shuts the socket down.
    for (int connection; (connection = accept(fd_, nullptr, nullptr)) >= 0;) {
      close(connection);
      ++connections_;
    }
  });
}

ClosingListener::~ClosingListener() { Close(); }

std::string ClosingListener::address() const {
  return absl::StrCat("127.0.0.1:", port_);
}

void ClosingListener::Close() {
  if (fd_ < 0) return;
  shutdown(fd_, SHUT_RDWR);  // wakes the acceptor
  if (acceptor_.joinable()) acceptor_.join();
  close(fd_);
  fd_ = -1;
}

}  // namespace varscope::testing
