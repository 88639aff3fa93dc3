// A stand-in for a PetTube server, for service_process_test: listens on
// --listen and --metrics_listen (port 0: the OS picks), prints the ready line
// a real server prints, and exits 0 on SIGTERM. With --fail it writes one
// stderr line and exits 2 before ready, as a server with a bad flag does.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace {

// Listens on "127.0.0.1:PORT"; returns the port bound, or -1.
int Listen(const std::string& address) {
  const size_t colon = address.rfind(':');
  if (colon == std::string::npos) return -1;
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  const int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(std::atoi(address.c_str() + colon + 1)));
  inet_pton(AF_INET, address.substr(0, colon).c_str(), &addr.sin_addr);
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) return -1;
  if (listen(fd, 1) != 0) return -1;
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  return ntohs(addr.sin_port);  // the fd stays open until exit
}

}  // namespace

int main(int argc, char** argv) {
  sigset_t term;
  sigemptyset(&term);
  sigaddset(&term, SIGTERM);
  sigprocmask(SIG_BLOCK, &term, nullptr);
  std::string listen = "127.0.0.1:0", metrics = "127.0.0.1:0";
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--fail") {
      std::fprintf(stderr, "flag --fail: failing as asked\n");
      return 2;
    }
    if (arg.rfind("--listen=", 0) == 0) listen = arg.substr(9);
    if (arg.rfind("--metrics_listen=", 0) == 0) metrics = arg.substr(17);
  }
  const int grpc_port = Listen(listen);
  const int metrics_port = Listen(metrics);
  if (grpc_port < 0 || metrics_port < 0) {
    std::fprintf(stderr, "listen: %s\n", std::strerror(errno));
    return 1;
  }
  std::printf("ready grpc=127.0.0.1:%d metrics=127.0.0.1:%d args=%d\n", grpc_port, metrics_port,
              argc - 1);
  std::fflush(stdout);
  int signal_number = 0;
  sigwait(&term, &signal_number);
  return 0;
}
