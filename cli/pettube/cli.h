#pragma once

// The pettube command-line client: commands, their flags and help, and
// running one invocation. main.cc only hands argv and the process
// environment to RunCli.

#include <ostream>
#include <string>
#include <vector>

#include "cli/pettube/args.h"
#include "cli/pettube/config.h"

namespace pettube::cli {

const std::vector<CommandSpec>& Commands();
const std::vector<FlagSpec>& GlobalFlags();

// Runs argv (without argv[0]) and returns the exit code (see
// exit_codes.h). `terminal`: stdout is a terminal (progress bars are
// redrawn in place; otherwise plain lines).
int RunCli(const std::vector<std::string>& argv, const EnvLookup& env, std::ostream& out,
           std::ostream& err, bool terminal);

}  // namespace pettube::cli
