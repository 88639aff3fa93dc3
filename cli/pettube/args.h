#pragma once

// Command-line parsing for the pettube CLI: `pettube [GLOBAL FLAGS] COMMAND
// [ARGS] [FLAGS]`. Flags are `--name=value`, `--name value`, or a boolean
// `--name`; a declared one-letter alias (`-o FILE`) works too; `--` ends the
// flags. `-h`/`--help` anywhere asks for the command's help. Pure: no I/O.

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace pettube::cli {

// One flag a command (or every command) accepts.
struct FlagSpec {
  std::string name;         // without dashes, e.g. "rendition"
  std::string value_name;   // e.g. "R"; empty for a boolean flag
  std::string help;
  char short_name = '\0';   // e.g. 'o' for -o
};

// One command.
struct CommandSpec {
  std::string name;      // e.g. "upload"
  std::string args;      // positional synopsis, e.g. "FILE"
  std::string summary;   // one line
  std::string details;   // more lines for --help (may be empty)
  int min_args = 0;
  int max_args = 0;
  std::vector<FlagSpec> flags;
};

// A parsed command line.
struct Invocation {
  std::string command;                       // "" when none was given
  std::vector<std::string> args;             // positional arguments
  std::map<std::string, std::string> flags;  // booleans map to "true"
  bool help = false;                         // -h / --help / `help CMD`

  bool Has(const std::string& flag) const { return flags.count(flag) > 0; }
  std::string Get(const std::string& flag, const std::string& fallback = "") const;
};

// Parses argv (without argv[0]). INVALID_ARGUMENT naming the problem for an
// unknown command or flag, a missing flag value, a value given to a boolean
// flag, or too few / too many arguments (unless help was asked for).
// `pettube help CMD` is the same as `pettube CMD --help`.
absl::StatusOr<Invocation> ParseArgs(const std::vector<CommandSpec>& commands,
                                     const std::vector<FlagSpec>& global_flags,
                                     const std::vector<std::string>& argv);

// Help text: the whole tool's (command == nullptr) or one command's.
std::string HelpText(const std::vector<CommandSpec>& commands,
                     const std::vector<FlagSpec>& global_flags, const CommandSpec* command);

// The spec named `name`, or nullptr.
const CommandSpec* FindCommand(const std::vector<CommandSpec>& commands, const std::string& name);

}  // namespace pettube::cli
