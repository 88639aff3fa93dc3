// Starts the PetTube suite (LocalStack) for tests written in other
// languages: prints the endpoints as KEY=VALUE lines and then "ready" on
// stdout, and stops everything when stdin reaches end of file (the test
// closes it, or dies). Usage: stack_runner STATE_DIR RUNFILES_ROOT

#include <unistd.h>

#include <cstdio>
#include <iostream>
#include <string>

#include "tests/e2e/local_stack.h"

int main(int argc, char** argv) {
  if (argc != 3) {
    std::cerr << "usage: stack_runner STATE_DIR RUNFILES_ROOT\n";
    return 2;
  }
  auto stack = pettube::e2e::LocalStack::Start(argv[1], argv[2]);
  if (!stack.ok()) {
    std::cerr << "stack_runner: " << stack.status().message() << "\n";
    return 1;
  }
  std::cout << (*stack)->EndpointsFile() << "ready\n" << std::flush;
  // Blocks until the parent closes our stdin: no timers, no polling.
  char buf[256];
  while (::read(STDIN_FILENO, buf, sizeof(buf)) > 0) {
  }
  return 0;
}
