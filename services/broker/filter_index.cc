#include "services/broker/filter_index.h"

#include <algorithm>
#include <iterator>
#include <limits>
#include <optional>

#include "services/broker/filter.h"

namespace pettube::broker {
namespace {

using ::io::cloudevents::v1::CloudEvent;
using ::pettube::broker::v1::Filter;

// The typed attributes, in the order of FilterIndex::typed_indexes_.
constexpr absl::string_view kTypedAttributes[] = {"id", "source", "specversion", "type"};

const std::string& TypedValue(const CloudEvent& event, size_t i) {
  switch (i) {
    case 0:
      return event.id();
    case 1:
      return event.source();
    case 2:
      return event.spec_version();
    default:
      return event.type();
  }
}

void AppendAll(const std::vector<uint32_t>& slots, std::vector<uint32_t>* out) {
  out->insert(out->end(), slots.begin(), slots.end());
}

// Removes `slot` from an unordered posting list.
void EraseSlot(std::vector<uint32_t>& slots, uint32_t slot) {
  const auto it = std::find(slots.begin(), slots.end(), slot);
  if (it == slots.end()) return;
  *it = slots.back();
  slots.pop_back();
}

}  // namespace

FilterIndex::Keyed FilterIndex::DeriveKeys(const Filter& filter, std::vector<Key>* keys) {
  // An empty prefix or suffix (ValidateFilter refuses them) holds for any
  // value: a presence key, never a zero-length one.
  const auto add_match = [keys](KeyKind kind, const v1::AttributeMatch& match) {
    if (kind != KeyKind::kExact && match.value().empty()) {
      keys->push_back({KeyKind::kPresent, match.attribute(), ""});
    } else {
      keys->push_back({kind, match.attribute(), match.value()});
    }
    return Keyed::kDecides;
  };
  switch (filter.filter_case()) {
    case Filter::kExact:
      return add_match(KeyKind::kExact, filter.exact());
    case Filter::kPrefix:
      return add_match(KeyKind::kPrefix, filter.prefix());
    case Filter::kSuffix:
      return add_match(KeyKind::kSuffix, filter.suffix());
    case Filter::kExists:
      keys->push_back({KeyKind::kPresent, filter.exists(), ""});
      return Keyed::kDecides;
    case Filter::kAnythingBut:
      // Weak (most events may carry the attribute) but sound: a missing
      // attribute never matches.
      keys->push_back({KeyKind::kPresent, filter.anything_but().attribute(), ""});
      return Keyed::kNarrows;
    case Filter::kAll: {
      // Every child must match, so any one child's keys will do: take the
      // least likely to be hit by accident, i.e. exact keys over prefix/suffix
      // over presence, and few keys over many.
      std::vector<Key> best;
      Keyed best_keyed = Keyed::kNo;
      int best_cost = std::numeric_limits<int>::max();
      for (const Filter& child : filter.all().filters()) {
        std::vector<Key> child_keys;
        const Keyed keyed = DeriveKeys(child, &child_keys);
        if (keyed == Keyed::kNo) continue;
        int cost = 0;
        for (const Key& key : child_keys) {
          cost += key.kind == KeyKind::kExact ? 1 : key.kind == KeyKind::kPresent ? 64 : 8;
        }
        if (cost < best_cost) {
          best_cost = cost;
          best_keyed = keyed;
          best = std::move(child_keys);
        }
      }
      if (best_keyed == Keyed::kNo) return Keyed::kNo;
      std::move(best.begin(), best.end(), std::back_inserter(*keys));
      // The other children still have to be checked.
      return filter.all().filters_size() == 1 ? best_keyed : Keyed::kNarrows;
    }
    case Filter::kAny: {
      // A match needs one matching child, so the union of the children's
      // keys covers it; one child without keys could match anything.
      Keyed keyed = Keyed::kDecides;
      for (const Filter& child : filter.any().filters()) {
        const Keyed child_keyed = DeriveKeys(child, keys);
        if (child_keyed == Keyed::kNo) return Keyed::kNo;
        if (child_keyed == Keyed::kNarrows) keyed = Keyed::kNarrows;
      }
      return keyed;
    }
    case Filter::kNot:
    case Filter::FILTER_NOT_SET:
      return Keyed::kNo;
  }
  return Keyed::kNo;
}

void FilterIndex::Add(uint32_t subscription_id, const Filter& filter) {
  Remove(subscription_id);
  Entry& entry = entries_[subscription_id];
  entry.filter = filter;
  entry.keyed = DeriveKeys(entry.filter, &entry.keys);
  if (entry.keyed == Keyed::kNo) {
    entry.keys.clear();
    const auto pos =
        std::lower_bound(unindexed_.begin(), unindexed_.end(), subscription_id,
                         [](const auto& unindexed, uint32_t id) { return unindexed.first < id; });
    unindexed_.insert(pos, {subscription_id, &entry.filter});
    return;
  }
  if (free_slots_.empty()) {
    entry.slot = static_cast<uint32_t>(slots_.size());
    slots_.emplace_back();
  } else {
    entry.slot = free_slots_.back();
    free_slots_.pop_back();
  }
  slots_[entry.slot] = {subscription_id, entry.keyed == Keyed::kDecides, &entry.filter};
  // any(exact(a), exact(a)) would otherwise post the slot twice under one key.
  std::sort(entry.keys.begin(), entry.keys.end());
  entry.keys.erase(std::unique(entry.keys.begin(), entry.keys.end()), entry.keys.end());
  for (const Key& key : entry.keys) Insert(key, entry.slot);
  RefreshTypedIndexes();
}

void FilterIndex::Remove(uint32_t subscription_id) {
  const auto it = entries_.find(subscription_id);
  if (it == entries_.end()) return;
  const Entry& entry = it->second;
  if (entry.keyed == Keyed::kNo) {
    const auto pos =
        std::lower_bound(unindexed_.begin(), unindexed_.end(), subscription_id,
                         [](const auto& unindexed, uint32_t id) { return unindexed.first < id; });
    unindexed_.erase(pos);
  } else {
    for (const Key& key : entry.keys) Erase(key, entry.slot);
    slots_[entry.slot] = {};
    free_slots_.push_back(entry.slot);
  }
  entries_.erase(it);
  RefreshTypedIndexes();
}

void FilterIndex::LengthSet::Add(size_t length, unsigned char boundary_byte) {
  if (key_counts_[{length, boundary_byte}]++ > 0) return;
  auto it = std::lower_bound(lengths_.begin(), lengths_.end(), length,
                             [](const Length& l, size_t length) { return l.length < length; });
  if (it == lengths_.end() || it->length != length) it = lengths_.insert(it, {length, {}});
  it->boundary_bytes.set(boundary_byte);
}

void FilterIndex::LengthSet::Remove(size_t length, unsigned char boundary_byte) {
  const auto count = key_counts_.find({length, boundary_byte});
  if (count == key_counts_.end() || --count->second > 0) return;
  key_counts_.erase(count);
  const auto it =
      std::lower_bound(lengths_.begin(), lengths_.end(), length,
                       [](const Length& l, size_t length) { return l.length < length; });
  it->boundary_bytes.reset(boundary_byte);
  if (it->boundary_bytes.none()) lengths_.erase(it);
}

void FilterIndex::Insert(const Key& key, uint32_t slot) {
  AttributeIndex& index = attributes_[key.attribute];
  switch (key.kind) {
    case KeyKind::kExact:
      index.exact[key.value].push_back(slot);
      break;
    case KeyKind::kPrefix: {
      std::vector<uint32_t>& slots = index.prefixes[key.value];
      if (slots.empty()) index.prefix_lengths.Add(key.value.size(), key.value.back());
      slots.push_back(slot);
      break;
    }
    case KeyKind::kSuffix: {
      std::vector<uint32_t>& slots = index.suffixes[key.value];
      if (slots.empty()) index.suffix_lengths.Add(key.value.size(), key.value.front());
      slots.push_back(slot);
      break;
    }
    case KeyKind::kPresent:
      index.present.push_back(slot);
      break;
  }
}

void FilterIndex::Erase(const Key& key, uint32_t slot) {
  const auto attribute = attributes_.find(key.attribute);
  if (attribute == attributes_.end()) return;
  AttributeIndex& index = attribute->second;
  // Drops the key's posting list once empty, and then its length entry.
  const auto erase_from = [&](auto& map, LengthSet* lengths, unsigned char boundary_byte) {
    const auto it = map.find(key.value);
    if (it == map.end()) return;
    EraseSlot(it->second, slot);
    if (!it->second.empty()) return;
    map.erase(it);
    if (lengths != nullptr) lengths->Remove(key.value.size(), boundary_byte);
  };
  switch (key.kind) {
    case KeyKind::kExact:
      erase_from(index.exact, nullptr, 0);
      break;
    case KeyKind::kPrefix:
      erase_from(index.prefixes, &index.prefix_lengths, key.value.back());
      break;
    case KeyKind::kSuffix:
      erase_from(index.suffixes, &index.suffix_lengths, key.value.front());
      break;
    case KeyKind::kPresent:
      EraseSlot(index.present, slot);
      break;
  }
  // An empty entry would still cost a lookup per event carrying the name.
  if (index.empty()) attributes_.erase(attribute);
}

void FilterIndex::RefreshTypedIndexes() {
  for (size_t i = 0; i < typed_indexes_.size(); ++i) {
    const auto it = attributes_.find(kTypedAttributes[i]);
    typed_indexes_[i] = it == attributes_.end() ? nullptr : &it->second;
  }
}

void FilterIndex::Probe(const AttributeIndex& index, absl::string_view value,
                        std::vector<uint32_t>* out) {
  AppendAll(index.present, out);
  if (const auto it = index.exact.find(value); it != index.exact.end()) AppendAll(it->second, out);
  for (const LengthSet::Length& l : index.prefix_lengths.lengths()) {
    if (l.length > value.size()) break;  // ascending: no longer prefix fits
    if (!l.boundary_bytes.test(static_cast<unsigned char>(value[l.length - 1]))) continue;
    const auto it = index.prefixes.find(value.substr(0, l.length));
    if (it != index.prefixes.end()) AppendAll(it->second, out);
  }
  for (const LengthSet::Length& l : index.suffix_lengths.lengths()) {
    if (l.length > value.size()) break;
    const size_t start = value.size() - l.length;
    if (!l.boundary_bytes.test(static_cast<unsigned char>(value[start]))) continue;
    const auto it = index.suffixes.find(value.substr(start));
    if (it != index.suffixes.end()) AppendAll(it->second, out);
  }
}

void FilterIndex::Match(const CloudEvent& event, std::vector<uint32_t>* out) const {
  const size_t begin = out->size();

  // Candidates: slots of subscriptions with a key this event satisfies,
  // collected in *out itself so that matching needs no scratch of its own.
  // Attributes absent from the event satisfy nothing, as AttributeValue()
  // defines presence: empty typed fields and valueless map entries are absent.
  for (size_t i = 0; i < typed_indexes_.size(); ++i) {
    const std::string& value = TypedValue(event, i);
    if (typed_indexes_[i] != nullptr && !value.empty()) Probe(*typed_indexes_[i], value, out);
  }
  if (!attributes_.empty()) {
    for (const auto& [name, value] : event.attributes()) {
      if (IsTypedAttribute(name)) continue;  // the typed field wins
      const auto it = attributes_.find(name);
      if (it == attributes_.end()) continue;
      const std::optional<AttributeText> text = AttributeText::FromValue(value);
      if (text.has_value()) Probe(it->second, text->view(), out);
    }
  }

  // A subscription is a candidate once per key and attribute it hit.
  std::sort(out->begin() + begin, out->end());
  out->erase(std::unique(out->begin() + begin, out->end()), out->end());

  // Slots -> ids of the matches. Where the keys only narrow, the filter decides.
  auto kept = out->begin() + begin;
  for (auto it = kept; it != out->end(); ++it) {
    const Slot& slot = slots_[*it];
    if (slot.decided || Matches(*slot.filter, event)) *kept++ = slot.subscription_id;
  }
  out->erase(kept, out->end());
  std::sort(out->begin() + begin, out->end());

  MergeUnindexedMatches(event, begin, out);
}

void FilterIndex::MergeUnindexedMatches(const CloudEvent& event, size_t begin,
                                        std::vector<uint32_t>* out) const {
  if (unindexed_.empty()) return;
  // Both lists are sorted and disjoint (a filter is either indexed or not).
  // Merging from the back into room made at the end needs no scratch buffer,
  // unlike std::inplace_merge, which may allocate one.
  std::vector<uint32_t>& ids = *out;
  size_t next_indexed = ids.size();  // indexed matches left: [begin, next_indexed)
  ids.resize(ids.size() + unindexed_.size());
  size_t write = ids.size();  // merged result: [write, ids.size())
  for (auto it = unindexed_.rbegin(); it != unindexed_.rend(); ++it) {
    if (!Matches(*it->second, event)) continue;
    while (next_indexed > begin && ids[next_indexed - 1] > it->first) {
      ids[--write] = ids[--next_indexed];
    }
    ids[--write] = it->first;
  }
  while (next_indexed > begin) ids[--write] = ids[--next_indexed];
  // Close the gap left by unindexed filters that did not match.
  if (write > begin) {
    const auto merged_end = std::move(ids.begin() + write, ids.end(), ids.begin() + begin);
    ids.erase(merged_end, ids.end());
  }
}

}  // namespace pettube::broker
