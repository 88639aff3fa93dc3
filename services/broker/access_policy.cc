#include "services/broker/access_policy.h"

#include <fstream>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "nlohmann/json.hpp"

namespace pettube::broker {
namespace {

bool TypeAllowed(const std::vector<std::string>& types, absl::string_view type) {
  if (types.empty()) return true;
  for (const std::string& t : types) {
    if (t == "*" || t == type) return true;
    if (absl::EndsWith(t, "*") &&
        absl::StartsWith(type, absl::string_view(t).substr(0, t.size() - 1)))
      return true;
  }
  return false;
}

absl::StatusOr<std::vector<std::string>> StringList(const nlohmann::json& entry,
                                                    const std::string& where, const char* field) {
  std::vector<std::string> out;
  if (!entry.contains(field)) return out;
  const nlohmann::json& list = entry[field];
  if (!list.is_array()) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ".", field, ": must be a list of strings"));
  }
  for (size_t i = 0; i < list.size(); ++i) {
    if (!list[i].is_string() || list[i].get<std::string>().empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ".", field, "[", i, "]: must be a non-empty string"));
    }
    out.push_back(list[i].get<std::string>());
  }
  return out;
}

}  // namespace

AccessPolicy AccessPolicy::Defaults() {
  AccessPolicy p;
  // The coordinator's work queue, whichever of the two creates it first.
  p.by_client_id_["transcode-worker"].subscriptions = {"subscriptions/transcode-jobs"};
  p.by_client_id_["transcode-coordinator"].subscriptions = {"subscriptions/transcode-jobs"};
  p.needs_client_ids_ = true;
  return p;
}

absl::StatusOr<AccessPolicy> AccessPolicy::Parse(absl::string_view text) {
  const nlohmann::json doc = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object()) {
    return absl::InvalidArgumentError("publish policy: not a JSON object");
  }
  if (!doc.contains("workloads") || !doc["workloads"].is_array()) {
    return absl::InvalidArgumentError("publish policy: \"workloads\" must be a list");
  }
  AccessPolicy p;
  p.restrict_publish_ = true;
  const nlohmann::json& list = doc["workloads"];
  for (size_t i = 0; i < list.size(); ++i) {
    const std::string where = absl::StrCat("workloads[", i, "]");
    const nlohmann::json& entry = list[i];
    if (!entry.is_object())
      return absl::InvalidArgumentError(absl::StrCat(where, ": must be an object"));
    for (const auto& [key, value] : entry.items()) {
      if (key != "client_id" && key != "identity" && key != "types" && key != "source_prefixes" &&
          key != "subscriptions") {
        return absl::InvalidArgumentError(
            absl::StrCat(where, ": unknown field \"", key,
                         "\" (known: client_id, identity, types, source_prefixes, subscriptions)"));
      }
    }
    const bool by_client = entry.contains("client_id");
    const bool by_identity = entry.contains("identity");
    if (by_client == by_identity) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": needs exactly one of client_id, identity"));
    }
    const char* key_field = by_client ? "client_id" : "identity";
    if (!entry[key_field].is_string() || entry[key_field].get<std::string>().empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ".", key_field, ": must be a non-empty string"));
    }
    Rule rule;
    auto types = StringList(entry, where, "types");
    if (!types.ok()) return types.status();
    auto sources = StringList(entry, where, "source_prefixes");
    if (!sources.ok()) return sources.status();
    auto subs = StringList(entry, where, "subscriptions");
    if (!subs.ok()) return subs.status();
    for (const std::string& s : *subs) {
      if (!absl::StartsWith(s, "subscriptions/")) {
        return absl::InvalidArgumentError(absl::StrCat(
            where, ".subscriptions: must name \"subscriptions/{id}\", got \"", s, "\""));
      }
    }
    rule.types = std::move(*types);
    rule.source_prefixes = std::move(*sources);
    rule.subscriptions = std::move(*subs);
    auto& map = by_client ? p.by_client_id_ : p.by_identity_;
    const std::string key = entry[key_field].get<std::string>();
    if (!map.emplace(key, std::move(rule)).second) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ".", key_field, ": \"", key, "\" is listed twice"));
    }
    if (by_client) p.needs_client_ids_ = true;
  }
  return p;
}

absl::StatusOr<AccessPolicy> AccessPolicy::FromFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("publish_policy_file: cannot read ", path));
  std::stringstream text;
  text << in.rdbuf();
  auto p = Parse(text.str());
  if (!p.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("publish_policy_file ", path, ": ", p.status().message()));
  }
  return p;
}

const AccessPolicy::Rule* AccessPolicy::Find(const Access& who) const {
  if (auto it = by_identity_.find(who.identity);
      !who.identity.empty() && it != by_identity_.end()) {
    return &it->second;
  }
  if (auto it = by_client_id_.find(who.client_id);
      !who.client_id.empty() && it != by_client_id_.end()) {
    return &it->second;
  }
  return nullptr;
}

absl::Status AccessPolicy::CheckPublish(const Access& who,
                                        const io::cloudevents::v1::CloudEvent& event) const {
  if (!who.checked || !restrict_publish_) return absl::OkStatus();
  const std::string name = !who.client_id.empty() ? absl::StrCat("workload \"", who.client_id, "\"")
                                                  : absl::StrCat("identity \"", who.identity, "\"");
  const Rule* rule = Find(who);
  if (rule == nullptr) {
    return absl::PermissionDeniedError(
        absl::StrCat("event: ", name, " is not in the broker's publish policy"));
  }
  if (!TypeAllowed(rule->types, event.type())) {
    return absl::PermissionDeniedError(
        absl::StrCat("event.type: \"", event.type(), "\" is not among the types ", name,
                     " may publish (", absl::StrJoin(rule->types, ", "), ")"));
  }
  if (!rule->source_prefixes.empty()) {
    bool ok = false;
    for (const std::string& prefix : rule->source_prefixes)
      ok |= absl::StartsWith(event.source(), prefix);
    if (!ok) {
      return absl::PermissionDeniedError(
          absl::StrCat("event.source: \"", event.source(), "\" starts with none of the prefixes ",
                       name, " may use (", absl::StrJoin(rule->source_prefixes, ", "), ")"));
    }
  }
  return absl::OkStatus();
}

bool AccessPolicy::Grants(const Access& who, absl::string_view subscription) const {
  const Rule* rule = Find(who);
  if (rule == nullptr) return false;
  for (const std::string& s : rule->subscriptions) {
    if (s == subscription) return true;
  }
  return false;
}

}  // namespace pettube::broker
