#include "cli/pettube/args.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace pettube::cli {
namespace {

const FlagSpec* FindFlag(const std::vector<const FlagSpec*>& flags, absl::string_view name) {
  for (const FlagSpec* f : flags) {
    if (f->name == name) return f;
  }
  return nullptr;
}

const FlagSpec* FindShort(const std::vector<const FlagSpec*>& flags, char c) {
  for (const FlagSpec* f : flags) {
    if (f->short_name == c) return f;
  }
  return nullptr;
}

std::string FlagLine(const FlagSpec& f) {
  std::string left = absl::StrCat("  --", f.name);
  if (!f.value_name.empty()) absl::StrAppend(&left, "=", f.value_name);
  if (f.short_name != '\0') {
    absl::StrAppend(&left, ", -", std::string(1, f.short_name));
    if (!f.value_name.empty()) absl::StrAppend(&left, " ", f.value_name);
  }
  if (left.size() < 28) left.resize(28, ' ');
  else left += "  ";
  return absl::StrCat(left, f.help, "\n");
}

}  // namespace

std::string Invocation::Get(const std::string& flag, const std::string& fallback) const {
  auto it = flags.find(flag);
  return it == flags.end() ? fallback : it->second;
}

const CommandSpec* FindCommand(const std::vector<CommandSpec>& commands, const std::string& name) {
  for (const CommandSpec& c : commands) {
    if (c.name == name) return &c;
  }
  return nullptr;
}

absl::StatusOr<Invocation> ParseArgs(const std::vector<CommandSpec>& commands,
                                     const std::vector<FlagSpec>& global_flags,
                                     const std::vector<std::string>& argv) {
  Invocation inv;
  const CommandSpec* command = nullptr;
  std::vector<const FlagSpec*> allowed;
  for (const FlagSpec& f : global_flags) allowed.push_back(&f);
  bool flags_done = false;

  for (size_t i = 0; i < argv.size(); ++i) {
    const std::string& arg = argv[i];
    if (!flags_done && arg == "--") {
      flags_done = true;
      continue;
    }
    if (!flags_done && (arg == "-h" || arg == "--help")) {
      inv.help = true;
      continue;
    }
    if (!flags_done && absl::StartsWith(arg, "--") && arg.size() > 2) {
      const size_t eq = arg.find('=');
      const std::string name = arg.substr(2, eq == std::string::npos ? std::string::npos : eq - 2);
      const FlagSpec* flag = FindFlag(allowed, name);
      if (flag == nullptr) {
        return absl::InvalidArgumentError(
            command == nullptr ? absl::StrCat("unknown flag --", name)
                               : absl::StrCat("unknown flag --", name, " for `", command->name,
                                              "` (see pettube ", command->name, " --help)"));
      }
      if (flag->value_name.empty()) {
        if (eq != std::string::npos) {
          const std::string v = arg.substr(eq + 1);
          if (v != "true" && v != "false") {
            return absl::InvalidArgumentError(
                absl::StrCat("--", name, " takes no value (got \"", v, "\")"));
          }
          if (v == "true") inv.flags[name] = "true";
          continue;
        }
        inv.flags[name] = "true";
        continue;
      }
      if (eq != std::string::npos) {
        inv.flags[name] = arg.substr(eq + 1);
      } else if (i + 1 < argv.size()) {
        inv.flags[name] = argv[++i];
      } else {
        return absl::InvalidArgumentError(
            absl::StrCat("--", name, " needs a value (", flag->value_name, ")"));
      }
      continue;
    }
    if (!flags_done && arg.size() == 2 && arg[0] == '-' && arg[1] != '-') {
      const FlagSpec* flag = FindShort(allowed, arg[1]);
      if (flag == nullptr) return absl::InvalidArgumentError(absl::StrCat("unknown flag ", arg));
      if (flag->value_name.empty()) {
        inv.flags[flag->name] = "true";
      } else if (i + 1 < argv.size()) {
        inv.flags[flag->name] = argv[++i];
      } else {
        return absl::InvalidArgumentError(
            absl::StrCat(arg, " needs a value (", flag->value_name, ")"));
      }
      continue;
    }
    if (command == nullptr) {
      if (arg == "help" && inv.command.empty()) {
        inv.help = true;
        inv.command = "help";
        continue;
      }
      command = FindCommand(commands, arg);
      if (command == nullptr) {
        return absl::InvalidArgumentError(
            absl::StrCat("unknown command \"", arg, "\" (see pettube --help)"));
      }
      inv.command = command->name;
      for (const FlagSpec& f : command->flags) allowed.push_back(&f);
      continue;
    }
    inv.args.push_back(arg);
  }
  if (inv.command == "help") inv.command.clear();
  if (inv.help) return inv;
  if (command == nullptr) return absl::InvalidArgumentError("no command given (see pettube --help)");
  if (static_cast<int>(inv.args.size()) < command->min_args) {
    return absl::InvalidArgumentError(absl::StrCat("`", command->name, "` needs ", command->args,
                                                   " (usage: pettube ", command->name, " ",
                                                   command->args, ")"));
  }
  if (static_cast<int>(inv.args.size()) > command->max_args) {
    return absl::InvalidArgumentError(absl::StrCat("`", command->name, "`: unexpected argument \"",
                                                   inv.args[command->max_args], "\""));
  }
  return inv;
}

std::string HelpText(const std::vector<CommandSpec>& commands,
                     const std::vector<FlagSpec>& global_flags, const CommandSpec* command) {
  std::string out;
  if (command == nullptr) {
    out = "pettube: sign in, upload, watch and play PetTube media.\n\n"
          "Usage: pettube [FLAGS] COMMAND [ARGS] [FLAGS]\n\nCommands:\n";
    for (const CommandSpec& c : commands) {
      std::string left = absl::StrCat("  ", c.name, c.args.empty() ? "" : " ", c.args);
      if (left.size() < 28) left.resize(28, ' ');
      else left += "  ";
      absl::StrAppend(&out, left, c.summary, "\n");
    }
    absl::StrAppend(&out, "\nFlags for every command:\n");
  } else {
    out = absl::StrCat("Usage: pettube ", command->name, command->args.empty() ? "" : " ",
                       command->args, command->flags.empty() ? "" : " [FLAGS]", "\n\n",
                       command->summary, "\n");
    if (!command->details.empty()) absl::StrAppend(&out, "\n", command->details, "\n");
    if (!command->flags.empty()) {
      absl::StrAppend(&out, "\nFlags:\n");
      for (const FlagSpec& f : command->flags) absl::StrAppend(&out, FlagLine(f));
    }
    absl::StrAppend(&out, "\nFlags for every command:\n");
  }
  for (const FlagSpec& f : global_flags) absl::StrAppend(&out, FlagLine(f));
  absl::StrAppend(&out,
                  "\nExit codes: 0 ok, 1 failure, 2 usage, 3 not signed in, 4 not found.\n");
  return out;
}

}  // namespace pettube::cli
