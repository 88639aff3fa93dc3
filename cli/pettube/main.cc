// pettube: the PetTube command-line client. See `pettube --help`.

#include <unistd.h>

#include <iostream>
#include <string>
#include <vector>

#include "cli/pettube/cli.h"

int main(int argc, char** argv) {
  const std::vector<std::string> args(argv + 1, argv + argc);
  return pettube::cli::RunCli(args, pettube::cli::ProcessEnv(), std::cout, std::cerr,
                              ::isatty(STDOUT_FILENO) == 1);
}
