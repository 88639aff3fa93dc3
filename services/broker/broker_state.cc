#include "services/broker/broker_state.h"

#include "absl/strings/str_cat.h"

namespace pettube::broker {

absl::Status BrokerState::MayUseLocked(const SubState& sub, const Access& access) {
  // Unowned subscriptions (created without credentials, or before owners
  // were kept) are open to every caller with the method's scope.
  if (!access.checked || access.admin || sub.owner.empty() || sub.owner == access.identity) {
    return absl::OkStatus();
  }
  if (options.access_policy != nullptr &&
      options.access_policy->Grants(access, sub.config.name())) {
    return absl::OkStatus();
  }
  return absl::PermissionDeniedError(absl::StrCat(
      "subscription ", sub.config.name(),
      " belongs to another workload: only its owner, a workload the publish policy grants it "
      "to, or events.admin may use it"));
}

}  // namespace pettube::broker
