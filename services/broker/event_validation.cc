#include "services/broker/event_validation.h"

#include <algorithm>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "libs/time/proto_time.h"
#include "services/broker/filter.h"

namespace pettube::broker {

using io::cloudevents::v1::CloudEvent;
using time::FromProto;
using time::ToProto;

bool ValidAttributeName(absl::string_view name) {
  if (name.empty() || name.size() > 20) return false;
  for (char c : name) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))) return false;
  }
  return true;
}

absl::Status ValidateEvent(const CloudEvent& e, size_t max_event_bytes) {
  if (e.id().empty()) return absl::InvalidArgumentError("event.id: must not be empty");
  if (e.source().empty()) return absl::InvalidArgumentError("event.source: must not be empty");
  if (e.spec_version() != "1.0") {
    return absl::InvalidArgumentError(
        absl::StrCat("event.spec_version: must be \"1.0\", got \"", e.spec_version(), "\""));
  }
  if (e.type().empty()) return absl::InvalidArgumentError("event.type: must not be empty");
  for (const auto& [name, value] : e.attributes()) {
    if (!ValidAttributeName(name)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "event.attributes[\"", name, "\"]: names are 1-20 of [a-z0-9] (CloudEvents)"));
    }
    if (name == "id" || name == "source" || name == "specversion" || name == "type") {
      return absl::InvalidArgumentError(
          absl::StrCat("event.attributes[\"", name, "\"]: set it in the event's own field"));
    }
    if (value.attr_case() == CloudEvent::CloudEventAttributeValue::ATTR_NOT_SET) {
      return absl::InvalidArgumentError(
          absl::StrCat("event.attributes[\"", name, "\"]: no value set"));
    }
  }
  const size_t size = e.ByteSizeLong();
  if (size > max_event_bytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("event: ", size, " bytes exceeds the ", max_event_bytes, "-byte limit"));
  }
  return absl::OkStatus();
}

absl::Status ValidateSubscriptionId(absl::string_view id) {
  const bool ok = !id.empty() && id.size() <= 63 && id[0] >= 'a' && id[0] <= 'z' &&
                  std::all_of(id.begin(), id.end(), [](char c) {
                    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
                  });
  if (ok) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      "subscription_id: must be 1-63 of [a-z0-9-] starting with a letter, got \"", id, "\""));
}

absl::Status ValidateName(absl::string_view name, absl::string_view field) {
  if (!absl::StartsWith(name, kSubscriptionsPrefix)) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": must be \"subscriptions/{id}\", got \"", name, "\""));
  }
  auto s = ValidateSubscriptionId(name.substr(sizeof(kSubscriptionsPrefix) - 1));
  if (!s.ok()) return absl::InvalidArgumentError(absl::StrCat(field, ": ", s.message()));
  return absl::OkStatus();
}

absl::Status NormalizeSettings(v1::Subscription& sub) {
  if (auto s = ValidateFilter(sub.filter()); !s.ok()) return s;
  if (!sub.has_ack_deadline()) *sub.mutable_ack_deadline() = ToProto(kDefaultAckDeadline);
  const absl::Duration ack = FromProto(sub.ack_deadline());
  if (ack < kMinAckDeadline || ack > kMaxAckDeadline) {
    return absl::InvalidArgumentError(
        absl::StrCat("ack_deadline: must be 1s to 12h, got ", absl::FormatDuration(ack)));
  }
  if (sub.max_delivery_attempts() == 0) sub.set_max_delivery_attempts(kDefaultMaxAttempts);
  if (sub.max_delivery_attempts() < 1 || sub.max_delivery_attempts() > kMaxMaxAttempts) {
    return absl::InvalidArgumentError(absl::StrCat("max_delivery_attempts: must be 1 to ",
                                                   kMaxMaxAttempts, ", got ",
                                                   sub.max_delivery_attempts()));
  }
  auto* retry = sub.mutable_retry_policy();
  if (!retry->has_min_backoff()) *retry->mutable_min_backoff() = ToProto(kDefaultMinBackoff);
  if (!retry->has_max_backoff()) *retry->mutable_max_backoff() = ToProto(kDefaultMaxBackoff);
  const absl::Duration min_b = FromProto(retry->min_backoff());
  const absl::Duration max_b = FromProto(retry->max_backoff());
  if (min_b < absl::ZeroDuration() || max_b < min_b || max_b > absl::Hours(12)) {
    return absl::InvalidArgumentError(
        absl::StrCat("retry_policy: need 0 <= min_backoff <= max_backoff <= 12h, got min ",
                     absl::FormatDuration(min_b), " max ", absl::FormatDuration(max_b)));
  }
  if (sub.has_max_age() && FromProto(sub.max_age()) <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("max_age: must be positive when set");
  }
  if (!v1::Ordering_IsValid(sub.ordering())) {
    return absl::InvalidArgumentError(absl::StrCat("ordering: unknown value ", sub.ordering()));
  }
  if (sub.ordering() == v1::ORDERING_UNSPECIFIED) sub.set_ordering(v1::ORDERING_NONE);
  if (!sub.has_dead_letter_policy()) sub.mutable_dead_letter_policy()->set_enabled(true);
  return absl::OkStatus();
}

std::string FormatLeaseId(const LeaseIdParts& p) {
  return absl::StrCat(p.subscription, "-", p.sequence, "-", p.attempt, "-", p.key);
}

std::optional<LeaseIdParts> ParseLeaseId(absl::string_view id) {
  uint64_t v[4];
  for (int i = 0; i < 4; ++i) {
    const size_t end = i < 3 ? id.find('-') : id.size();
    if (end == absl::string_view::npos || end == 0) return std::nullopt;
    for (char ch : id.substr(0, end)) {
      if (ch < '0' || ch > '9') return std::nullopt;
    }
    if (!absl::SimpleAtoi(id.substr(0, end), &v[i])) return std::nullopt;
    id.remove_prefix(i < 3 ? end + 1 : end);
  }
  return LeaseIdParts{v[0], v[1], v[2], v[3]};
}

}  // namespace pettube::broker
