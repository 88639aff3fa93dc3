#include "services/media-catalog/caller_cache.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace pettube::catalog {
namespace {

absl::Status CheckScope(const auth::Caller& caller, absl::string_view scope) {
  if (caller.HasScope(scope)) return absl::OkStatus();
  return absl::PermissionDeniedError(
      absl::StrCat("the access token lacks scope \"", scope, "\" needed for this call"));
}

}  // namespace

CallerCache::CallerCache(const auth::Authenticator* authenticator, Options options)
    : authenticator_(authenticator), options_(options) {}

absl::StatusOr<auth::Caller> CallerCache::Authorize(const grpc::ServerContextBase& context,
                                                    absl::string_view scope) {
  const auto& md = context.client_metadata();
  auto it = md.find("authorization");
  if (it == md.end()) return authenticator_->Authorize(context, scope);  // its message
  const std::string header(it->second.data(), it->second.size());
  const absl::Time now = absl::Now();
  {
    absl::MutexLock lock(&mu_);
    if (auto hit = entries_.find(header); hit != entries_.end()) {
      if (now < hit->second.valid_until) {
        if (auto s = CheckScope(hit->second.caller, scope); !s.ok()) return s;
        return hit->second.caller;
      }
      entries_.erase(hit);
    }
  }
  auto caller = authenticator_->Authenticate(context);
  if (!caller.ok()) return caller.status();
  {
    absl::MutexLock lock(&mu_);
    if (entries_.size() >= options_.capacity) entries_.clear();
    entries_[header] = {*caller, std::min(caller->expire_time, now + options_.max_age)};
  }
  if (auto s = CheckScope(*caller, scope); !s.ok()) return s;
  return caller;
}

}  // namespace pettube::catalog
