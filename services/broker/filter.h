#pragma once

// Subscription filters over CloudEvents attributes: validation, attribute
// lookup and matching of one filter against one event. FilterIndex
// (filter_index.h) decides which of many filters to evaluate; Matches() here
// is the one definition of what a filter means.

#include <cstddef>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "proto/io/cloudevents/v1/cloudevents.pb.h"
#include "proto/pettube/broker/v1/broker.pb.h"

namespace pettube::broker {

// Bounds on one filter, so that the cost of matching it against an event is
// bounded no matter what a client sends.
inline constexpr int kMaxFilterDepth = 8;              // levels, top level is 1
inline constexpr int kMaxAnythingButValues = 64;       // values of one anything_but
inline constexpr int kMaxFilterNodes = 64;             // Filter messages in the tree
inline constexpr size_t kMaxFilterValueLength = 1024;  // bytes per compared value

// OK if `filter` may be a subscription's filter. An empty top-level filter (no
// kind set) is valid and means "match all"; an empty nested one is not.
// INVALID_ARGUMENT otherwise, the message naming field path, rule and value:
//   filter.all.filters[2].prefix.value: must not be empty
//   filter.exact.attribute: "Type" must be lower-case [a-z0-9], 1-20 chars (CloudEvents ...)
absl::Status ValidateFilter(const pettube::broker::v1::Filter& filter);

// True if no filter kind is set: a subscription with this filter receives
// every event.
bool IsMatchAll(const pettube::broker::v1::Filter& filter);

// The string form of one attribute of an event, as filters compare it.
// String-typed values (the typed fields, ce_string, ce_uri, ce_uri_ref) are
// borrowed from the event, so looking them up never allocates; the event must
// outlive this object. Other types are formatted into an owned string.
// Copyable; thread-compatible.
class AttributeText {
 public:
  // Refers to `value` without copying it.
  static AttributeText Borrowed(absl::string_view value);
  static AttributeText Owned(std::string value);

  // The string form of `value` per the CloudEvents type system: strings and
  // URIs as is, booleans "true"/"false", integers in decimal, timestamps in
  // RFC 3339 ("2024-05-01T12:00:00Z"), bytes in base64. nullopt if no value is
  // set. Borrows string-typed values from `value`.
  static std::optional<AttributeText> FromValue(
      const io::cloudevents::v1::CloudEvent::CloudEventAttributeValue& value);

  absl::string_view view() const { return is_owned_ ? absl::string_view(owned_) : borrowed_; }

 private:
  absl::string_view borrowed_;
  std::string owned_;
  bool is_owned_ = false;
};

// True for the required attributes, which a CloudEvent carries in typed fields
// (id, source, specversion, type) rather than in its `attributes` map.
bool IsTypedAttribute(absl::string_view name);

// The value of attribute `name` of `event`, or nullopt if the event lacks it.
// "id", "source", "specversion" and "type" come from the typed fields and are
// absent when empty (proto3 cannot tell empty from unset, and CloudEvents
// requires them non-empty); a map entry with one of these names is ignored.
// Every other name is looked up in `attributes`.
std::optional<AttributeText> AttributeValue(const io::cloudevents::v1::CloudEvent& event,
                                            absl::string_view name);

// Whether `event` matches `filter`:
//   exact         the attribute is present and equals the value
//   prefix/suffix the attribute is present and starts/ends with the value
//   exists        the attribute is present
//   anything_but  the attribute is present and equals none of the values
//   all / any     every / at least one sub-filter matches
//   not           the sub-filter does not match
// A filter with no kind set matches every event. Comparisons are byte-wise
// and case-sensitive. Expects a filter ValidateFilter accepted (others get an
// answer, but not necessarily a meaningful one).
bool Matches(const pettube::broker::v1::Filter& filter,
             const io::cloudevents::v1::CloudEvent& event);

}  // namespace pettube::broker
