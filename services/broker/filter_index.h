#pragma once

#include <array>
#include <bitset>
#include <cstddef>
#include <cstdint>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/node_hash_map.h"
#include "absl/strings/string_view.h"
#include "proto/io/cloudevents/v1/cloudevents.pb.h"
#include "proto/pettube/broker/v1/broker.pb.h"

namespace pettube::broker {

// The broker's routing table: given an event, finds every subscription whose
// filter matches it, at a cost that grows with the number of filters that
// could plausibly match rather than with the number of subscriptions.
//
// Each filter is reduced to index keys, at least one of which every matching
// event satisfies: exact(attr, v) gives (attr == v), prefix and suffix give
// (attr starts/ends with v), exists and anything_but give (attr present),
// `all` the keys of its most selective indexable child, `any` the union of
// its children's keys if all of them have keys. An event's attribute values
// are looked up in hash maps to collect candidates, and each candidate's
// filter is then evaluated with Matches(): the index narrows, Matches()
// decides. Only where a key hit is itself the answer (plain exact, prefix,
// suffix, exists, and `any` of those) is the evaluation skipped. Filters
// without keys (`not`, match-all, `any` with such a child) are evaluated for
// every event; unindexed_size() counts them.
//
// Usage:
//   FilterIndex index;
//   index.Add(7, subscription.filter());  // ValidateFilter() it first
//   std::vector<uint32_t> ids;            // reuse across events
//   ids.clear();
//   index.Match(event, &ids);
//
// Not thread-safe: the broker guards it with its own mutex. Const methods
// (Match, size) keep no scratch state, so they may run concurrently with each
// other (e.g. under a reader lock), never with Add or Remove.
class FilterIndex {
 public:
  FilterIndex() = default;
  // Neither copyable nor movable: it points into its own containers.
  FilterIndex(const FilterIndex&) = delete;
  FilterIndex& operator=(const FilterIndex&) = delete;

  // Indexes `filter` for `subscription_id`, replacing any filter that id had.
  // Expects a filter ValidateFilter() accepted.
  void Add(uint32_t subscription_id, const pettube::broker::v1::Filter& filter);

  // Forgets `subscription_id`'s filter; a no-op for an unknown id.
  void Remove(uint32_t subscription_id);

  // Subscriptions indexed.
  size_t size() const { return entries_.size(); }

  // Subscriptions whose filters have no index keys, evaluated for every
  // event. Worth watching: each adds to the cost of routing every event.
  size_t unindexed_size() const { return unindexed_.size(); }

  // Appends to `*out` the id of every subscription whose filter matches
  // `event`, each once, in ascending order (after whatever `*out` held).
  // Allocates nothing once `*out` has grown to its working size, unless an
  // attribute of non-string type (e.g. a timestamp) must be formatted to be
  // compared.
  void Match(const io::cloudevents::v1::CloudEvent& event, std::vector<uint32_t>* out) const;

 private:
  enum class KeyKind : uint8_t { kExact, kPrefix, kSuffix, kPresent };

  // A condition on one attribute; value is empty for kPresent.
  struct Key {
    KeyKind kind;
    std::string attribute;
    std::string value;

    friend bool operator<(const Key& a, const Key& b) {
      return std::tie(a.kind, a.attribute, a.value) < std::tie(b.kind, b.attribute, b.value);
    }
    friend bool operator==(const Key& a, const Key& b) {
      return std::tie(a.kind, a.attribute, a.value) == std::tie(b.kind, b.attribute, b.value);
    }
  };

  // What a filter's keys say about it.
  enum class Keyed {
    kNo,       // no keys: evaluate the filter for every event
    kNarrows,  // a matching event hits a key, but a hit still needs Matches()
    kDecides,  // an event matches if and only if it hits a key
  };

  // The distinct lengths of one attribute's prefix (or suffix) keys, so that
  // a value is probed once per length rather than once per byte. Per length
  // it also keeps the bytes the keys end with (prefixes) or start with
  // (suffixes): when the value's byte at that position is none of them, the
  // hash lookup is skipped. Keys tend to end at a delimiter
  // ("pettube.media.", "/upload"), where most values that don't match have a
  // letter or digit.
  class LengthSet {
   public:
    struct Length {
      size_t length;
      std::bitset<256> boundary_bytes;
    };

    void Add(size_t length, unsigned char boundary_byte);
    void Remove(size_t length, unsigned char boundary_byte);
    // Ascending by length.
    const std::vector<Length>& lengths() const { return lengths_; }

   private:
    std::vector<Length> lengths_;
    // Keys per (length, boundary byte), to know when a bit may be cleared.
    absl::flat_hash_map<std::pair<size_t, unsigned char>, size_t> key_counts_;
  };

  // Keys of one attribute name. Posting lists hold slots (see Slot), unordered.
  struct AttributeIndex {
    absl::flat_hash_map<std::string, std::vector<uint32_t>> exact;
    absl::flat_hash_map<std::string, std::vector<uint32_t>> prefixes;
    absl::flat_hash_map<std::string, std::vector<uint32_t>> suffixes;
    LengthSet prefix_lengths;
    LengthSet suffix_lengths;
    std::vector<uint32_t> present;

    bool empty() const {
      return exact.empty() && prefixes.empty() && suffixes.empty() && present.empty();
    }
  };

  struct Entry {
    pettube::broker::v1::Filter filter;
    Keyed keyed = Keyed::kNo;
    std::vector<Key> keys;  // deduplicated; empty if keyed is kNo
    uint32_t slot = 0;      // unused if keyed is kNo
  };

  // An indexed subscription as posting lists name it: by a dense number, so
  // that turning a candidate into its filter is a vector index, not a hash
  // lookup.
  struct Slot {
    uint32_t subscription_id;
    bool decided;  // Keyed::kDecides: a hit is a match, skip Matches()
    const pettube::broker::v1::Filter* filter;
  };

  // Appends to `*keys` conditions one of which every event matching `filter`
  // meets. `*keys` is unspecified if the answer is Keyed::kNo.
  static Keyed DeriveKeys(const pettube::broker::v1::Filter& filter, std::vector<Key>* keys);

  void Insert(const Key& key, uint32_t slot);
  void Erase(const Key& key, uint32_t slot);
  void RefreshTypedIndexes();

  // Appends the slots of every key of `index` that `value` satisfies.
  static void Probe(const AttributeIndex& index, absl::string_view value,
                    std::vector<uint32_t>* out);

  // Merges into the sorted ids [begin, out->size()) those unindexed
  // subscriptions whose filters match `event`, keeping the range sorted.
  void MergeUnindexedMatches(const io::cloudevents::v1::CloudEvent& event, size_t begin,
                             std::vector<uint32_t>* out) const;

  // Node-based so that Entry::filter has a stable address for Slot and
  // unindexed_.
  absl::node_hash_map<uint32_t, Entry> entries_;
  std::vector<Slot> slots_;
  std::vector<uint32_t> free_slots_;
  absl::flat_hash_map<std::string, AttributeIndex> attributes_;
  // attributes_ entries of the four typed attributes (id, source,
  // specversion, type; nullptr when none), refreshed after every change:
  // every event has them, so skipping their hash lookups pays.
  std::array<const AttributeIndex*, 4> typed_indexes_ = {};
  // Subscriptions whose filters have no keys, sorted by id.
  std::vector<std::pair<uint32_t, const pettube::broker::v1::Filter*>> unindexed_;
};

}  // namespace pettube::broker
