#include "services/broker/filter.h"

#include <string_view>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/util/time_util.h"

namespace pettube::broker {
namespace {

using ::io::cloudevents::v1::CloudEvent;
using ::pettube::broker::v1::Filter;
using ::pettube::broker::v1::FilterList;

// CloudEvents: names SHOULD NOT exceed 20 characters; we make it a MUST so
// that attribute names stay cheap to hash and compare on every event.
constexpr size_t kMaxAttributeNameLength = 20;

// The typed field holding required attribute `name`, or nullptr if `name` is
// not a required attribute.
const std::string* TypedField(const CloudEvent& event, absl::string_view name) {
  // By length first: this runs for every attribute of every filter evaluated.
  switch (name.size()) {
    case 2:
      return name == "id" ? &event.id() : nullptr;
    case 4:
      return name == "type" ? &event.type() : nullptr;
    case 6:
      return name == "source" ? &event.source() : nullptr;
    case 11:
      return name == "specversion" ? &event.spec_version() : nullptr;
    default:
      return nullptr;
  }
}

std::string Quoted(absl::string_view text) {
  return absl::StrCat("\"", absl::CHexEscape(text), "\"");
}

absl::Status Invalid(absl::string_view path, absl::string_view rule) {
  return absl::InvalidArgumentError(absl::StrCat(path, ": ", rule));
}

absl::Status ValidateAttributeName(absl::string_view path, absl::string_view name) {
  bool valid = !name.empty() && name.size() <= kMaxAttributeNameLength;
  for (const char c : name) {
    valid = valid && ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'));
  }
  if (valid) return absl::OkStatus();
  return Invalid(path, absl::StrCat(Quoted(name),
                                    " must be lower-case [a-z0-9], 1-20 chars (CloudEvents "
                                    "attribute naming)"));
}

absl::Status ValidateValue(absl::string_view path, absl::string_view value, bool may_be_empty) {
  if (!may_be_empty && value.empty()) return Invalid(path, "must not be empty");
  if (value.size() > kMaxFilterValueLength) {
    // The value itself may be huge: name its size, not its bytes.
    return Invalid(path, absl::StrCat(value.size(), " bytes exceeds the limit of ",
                                      kMaxFilterValueLength, " bytes"));
  }
  return absl::OkStatus();
}

// Walks one filter tree depth first, reporting the first violation found.
class Validator {
 public:
  absl::Status Validate(const Filter& filter, int depth, const std::string& path) {
    if (depth > kMaxFilterDepth) {
      return Invalid(path,
                     absl::StrCat("nested deeper than the limit of ", kMaxFilterDepth, " levels"));
    }
    if (++nodes_ > kMaxFilterNodes) {
      return Invalid("filter",
                     absl::StrCat("has more than the limit of ", kMaxFilterNodes, " filter nodes"));
    }
    switch (filter.filter_case()) {
      case Filter::kExact:
        return ValidateMatch(filter.exact(), /*may_be_empty=*/true, absl::StrCat(path, ".exact"));
      case Filter::kPrefix:
        return ValidateMatch(filter.prefix(), /*may_be_empty=*/false,
                             absl::StrCat(path, ".prefix"));
      case Filter::kSuffix:
        return ValidateMatch(filter.suffix(), /*may_be_empty=*/false,
                             absl::StrCat(path, ".suffix"));
      case Filter::kExists:
        return ValidateAttributeName(absl::StrCat(path, ".exists"), filter.exists());
      case Filter::kAnythingBut: {
        const std::string kind = absl::StrCat(path, ".anything_but");
        const auto& anything_but = filter.anything_but();
        absl::Status status =
            ValidateAttributeName(absl::StrCat(kind, ".attribute"), anything_but.attribute());
        if (!status.ok()) return status;
        if (anything_but.values().empty()) return Invalid(kind + ".values", "must not be empty");
        // Checked one by one on every event: keep the list short.
        if (anything_but.values_size() > kMaxAnythingButValues) {
          return Invalid(kind + ".values", absl::StrCat("has more than the limit of ",
                                                        kMaxAnythingButValues, " values"));
        }
        for (int i = 0; i < anything_but.values_size(); ++i) {
          status = ValidateValue(absl::StrCat(kind, ".values[", i, "]"), anything_but.values(i),
                                 /*may_be_empty=*/true);
          if (!status.ok()) return status;
        }
        return absl::OkStatus();
      }
      case Filter::kAll:
        return ValidateList(filter.all(), depth, absl::StrCat(path, ".all"));
      case Filter::kAny:
        return ValidateList(filter.any(), depth, absl::StrCat(path, ".any"));
      case Filter::kNot:
        return Validate(filter.not_(), depth + 1, absl::StrCat(path, ".not"));
      case Filter::FILTER_NOT_SET:
        // Only the subscription's own filter may be empty ("match all"):
        // nested, an empty filter is almost certainly a client bug.
        if (depth == 1) return absl::OkStatus();
        return Invalid(path, "no filter kind set");
    }
    return Invalid(path, "unknown filter kind");
  }

 private:
  absl::Status ValidateMatch(const v1::AttributeMatch& match, bool may_be_empty,
                             const std::string& path) {
    absl::Status status = ValidateAttributeName(path + ".attribute", match.attribute());
    if (!status.ok()) return status;
    return ValidateValue(path + ".value", match.value(), may_be_empty);
  }

  absl::Status ValidateList(const FilterList& list, int depth, const std::string& path) {
    if (list.filters().empty()) return Invalid(path + ".filters", "must not be empty");
    for (int i = 0; i < list.filters_size(); ++i) {
      absl::Status status =
          Validate(list.filters(i), depth + 1, absl::StrCat(path, ".filters[", i, "]"));
      if (!status.ok()) return status;
    }
    return absl::OkStatus();
  }

  int nodes_ = 0;
};

}  // namespace

absl::Status ValidateFilter(const Filter& filter) {
  return Validator().Validate(filter, /*depth=*/1, "filter");
}

bool IsMatchAll(const Filter& filter) { return filter.filter_case() == Filter::FILTER_NOT_SET; }

AttributeText AttributeText::Borrowed(absl::string_view value) {
  AttributeText text;
  text.borrowed_ = value;
  return text;
}

AttributeText AttributeText::Owned(std::string value) {
  AttributeText text;
  text.owned_ = std::move(value);
  text.is_owned_ = true;
  return text;
}

std::optional<AttributeText> AttributeText::FromValue(
    const CloudEvent::CloudEventAttributeValue& value) {
  using Value = CloudEvent::CloudEventAttributeValue;
  switch (value.attr_case()) {
    case Value::kCeBoolean:
      return Borrowed(value.ce_boolean() ? "true" : "false");
    case Value::kCeInteger:
      return Owned(absl::StrCat(value.ce_integer()));
    case Value::kCeString:
      return Borrowed(value.ce_string());
    case Value::kCeBytes:
      return Owned(absl::Base64Escape(value.ce_bytes()));
    case Value::kCeUri:
      return Borrowed(value.ce_uri());
    case Value::kCeUriRef:
      return Borrowed(value.ce_uri_ref());
    case Value::kCeTimestamp:
      // Z-normalized, 0/3/6/9 fractional digits: one canonical text per
      // instant, so exact and prefix filters on time behave predictably.
      return Owned(google::protobuf::util::TimeUtil::ToString(value.ce_timestamp()));
    case Value::ATTR_NOT_SET:
      break;
  }
  return std::nullopt;
}

bool IsTypedAttribute(absl::string_view name) {
  return TypedField(CloudEvent::default_instance(), name) != nullptr;
}

std::optional<AttributeText> AttributeValue(const CloudEvent& event, absl::string_view name) {
  if (const std::string* field = TypedField(event, name); field != nullptr) {
    if (field->empty()) return std::nullopt;
    return AttributeText::Borrowed(*field);
  }
  // Protobuf's string-keyed Map looks up a std::string_view without copying.
  const auto it = event.attributes().find(std::string_view(name.data(), name.size()));
  if (it == event.attributes().end()) return std::nullopt;
  return AttributeText::FromValue(it->second);
}

bool Matches(const Filter& filter, const CloudEvent& event) {
  switch (filter.filter_case()) {
    case Filter::kExact: {
      const std::optional<AttributeText> value = AttributeValue(event, filter.exact().attribute());
      return value.has_value() && value->view() == filter.exact().value();
    }
    case Filter::kPrefix: {
      const std::optional<AttributeText> value = AttributeValue(event, filter.prefix().attribute());
      return value.has_value() && absl::StartsWith(value->view(), filter.prefix().value());
    }
    case Filter::kSuffix: {
      const std::optional<AttributeText> value = AttributeValue(event, filter.suffix().attribute());
      return value.has_value() && absl::EndsWith(value->view(), filter.suffix().value());
    }
    case Filter::kExists:
      return AttributeValue(event, filter.exists()).has_value();
    case Filter::kAnythingBut: {
      const std::optional<AttributeText> value =
          AttributeValue(event, filter.anything_but().attribute());
      if (!value.has_value()) return false;
      for (const std::string& excluded : filter.anything_but().values()) {
        if (value->view() == excluded) return false;
      }
      return true;
    }
    case Filter::kAll:
      for (const Filter& child : filter.all().filters()) {
        if (!Matches(child, event)) return false;
      }
      return true;
    case Filter::kAny:
      for (const Filter& child : filter.any().filters()) {
        if (Matches(child, event)) return true;
      }
      return false;
    case Filter::kNot:
      return !Matches(filter.not_(), event);
    case Filter::FILTER_NOT_SET:
      return true;
  }
  return false;
}

}  // namespace pettube::broker
