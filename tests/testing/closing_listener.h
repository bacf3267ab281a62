// A loopback port nothing serves, held for a test.
#ifndef VARSCOPE_TESTS_TESTING_CLOSING_LISTENER_H_
#define VARSCOPE_TESTS_TESTING_CLOSING_LISTENER_H_

#include <atomic>
#include <string>
#include <thread>

namespace varscope::testing {

// Listens on 127.0.0.1 on a port of the kernel's choice and closes every
// connection it accepts at once: a client's calls there fail UNAVAILABLE,
// and connections() tells how many attempts reached the port. The port is
// this listener's until Close(), so no other process can take it meanwhile
// (unlike a port bound and closed to see that it is free); a test that then
// starts a server there does so right after Close(). Not copyable.
class ClosingListener {
 public:
  // Fails the test (ADD_FAILURE) if no port can be had.
  ClosingListener();
  ~ClosingListener();  // Close()
  ClosingListener(const ClosingListener&) = delete;
  ClosingListener& operator=(const ClosingListener&) = delete;

  int port() const { return port_; }
  // "127.0.0.1:PORT".
  std::string address() const;
  // Connections accepted (and closed) so far.
  int connections() const { return connections_.load(); }
  // Stops listening and frees the port. Idempotent.
  void Close();

 private:
  int fd_ = -1;
  int port_ = 0;
  std::atomic<int> connections_{0};
  std::thread acceptor_;
};

}  // namespace varscope::testing

#endif  // VARSCOPE_TESTS_TESTING_CLOSING_LISTENER_H_
