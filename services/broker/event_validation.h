#pragma once

// The broker's input contract: what a published event, a subscription id or
// name, a subscription's settings and a lease id must look like. One
// library so the real broker and libs/broker_client's fake broker cannot
// drift apart. Pure functions: no state, thread-safe.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "proto/io/cloudevents/v1/cloudevents.pb.h"
#include "proto/pettube/broker/v1/broker.pb.h"

namespace pettube::broker {

inline constexpr char kSubscriptionsPrefix[] = "subscriptions/";

// Ranges and defaults of a subscription's settings.
inline constexpr absl::Duration kDefaultAckDeadline = absl::Seconds(30);
inline constexpr absl::Duration kMinAckDeadline = absl::Seconds(1);
inline constexpr absl::Duration kMaxAckDeadline = absl::Hours(12);
inline constexpr int kDefaultMaxAttempts = 5;
inline constexpr int kMaxMaxAttempts = 1000;
inline constexpr absl::Duration kDefaultMinBackoff = absl::Seconds(1);
inline constexpr absl::Duration kDefaultMaxBackoff = absl::Seconds(60);
// Longest nack delay honoured (longer ones are clamped).
inline constexpr absl::Duration kMaxNackDelay = absl::Hours(12);

// INVALID_ARGUMENT naming the field unless `event` has the required
// CloudEvents attributes, well-formed extension names with values, and
// serializes to at most `max_event_bytes`.
absl::Status ValidateEvent(const io::cloudevents::v1::CloudEvent& event, size_t max_event_bytes);

// A CloudEvents extension attribute name: 1-20 of [a-z0-9].
bool ValidAttributeName(absl::string_view name);

// INVALID_ARGUMENT unless `id` is 1-63 of [a-z0-9-] starting with a letter.
absl::Status ValidateSubscriptionId(absl::string_view id);

// INVALID_ARGUMENT (prefixed with `field`) unless `name` is
// "subscriptions/{id}" with a valid id.
absl::Status ValidateName(absl::string_view name, absl::string_view field);

// Fills a subscription's unset settings with defaults and checks the
// ranges of the mutable ones (filter included); INVALID_ARGUMENT naming
// the first bad field.
absl::Status NormalizeSettings(v1::Subscription& subscription);

// A lease id on the wire: "subscription-sequence-attempt-key".
struct LeaseIdParts {
  uint64_t subscription, sequence, attempt, key;
};
std::string FormatLeaseId(const LeaseIdParts& parts);
// nullopt unless `id` is four decimal numbers joined by '-'.
std::optional<LeaseIdParts> ParseLeaseId(absl::string_view id);

}  // namespace pettube::broker
