#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "services/broker/dedup_run.h"
#include "services/broker/serial_worker.h"

namespace pettube::broker {

// The broker's dedup table: source + id -> sequence and publish time, for
// the dedup window. One RocksDB entry per event cost about as much CPU as
// the rest of a publish (docs/benchmarks.md, run 21), so the table keeps
// its own, cheaper structure, and leans on the event log for crash safety:
//
// - New entries go to an in-memory segment. They are never written on the
//   publish path: each event, in the log, already holds its source and id,
//   so after a restart the store re-adds the entries of the events past
//   IndexedThrough() from the log (RocksDbBrokerStore::OpenDedupIndex).
// - A segment that is full (and whose events are all durable) is written
//   by the index's own thread as an immutable run file (DedupRun, in
//   dedup_run.h: sorted, with a bloom filter, complete and synced before
//   it is renamed into place, so a crash leaves either no run or a whole
//   one).
// - Every four runs of one level are merged into one, dropping entries
//   older than the window, so a lookup checks a few filters; runs wholly
//   past the window are deleted.
//
// Thread-safe. Add and MarkDurable are called in sequence order by the
// store's single writer; lookups from any thread.
class DedupIndex {
 public:
  // About what a segment holds per entry with a key of 40 bytes (an
  // estimate from its layout, rounded up), to size segments from a share
  // of the memory budget.
  static constexpr size_t kSegmentBytesPerEntry = 80;

  struct Options {
    std::string dir;
    absl::Duration window = absl::Hours(24);
    // Entries per in-memory segment (kSegmentBytesPerEntry each), and the
    // most bytes of keys one holds (long ids fill it sooner; at most 1 GiB).
    size_t segment_entries = 1 << 16;
    size_t segment_key_bytes = 64 << 20;
    // Runs of one level merged together.
    size_t merge_width = 4;
  };

  // Opens (or creates) the run files in `dir`. Leftovers of a crash (a
  // temporary file, runs a finished merge covers) are removed; a run that
  // fails its checks, or does not follow the one before it, is renamed
  // `*.corrupt` with every later one, and IndexedThrough() ends before it,
  // so the store rebuilds their entries from the log.
  static absl::StatusOr<std::unique_ptr<DedupIndex>> Open(const Options& options);
  ~DedupIndex();  // waits for a run being written

  // The highest sequence whose entry (if any) is in a run file: entries of
  // later sequences live only in memory and must be re-added after a
  // restart.
  uint64_t IndexedThrough() const ABSL_LOCKS_EXCLUDED(mu_);

  // Adds an entry; sequences only grow.
  void Add(absl::string_view key, uint64_t sequence, absl::Time publish_time)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Every event up to `sequence` is durable: their entries may be written
  // to runs (entries of events a crash could still take must not be).
  void MarkDurable(uint64_t sequence) ABSL_LOCKS_EXCLUDED(mu_);
  // Seals the segment taking entries and writes every segment whose events
  // are durable, now, on the calling thread: before the log drops events
  // whose entries are only in memory, and to bound a rebuild's memory.
  absl::Status PersistDurable() ABSL_LOCKS_EXCLUDED(mu_);

  // For each key, the sequence of its newest entry if that was published
  // at or after `not_before`.
  absl::Status Lookup(absl::Span<const std::string> keys, absl::Time not_before,
                      std::vector<std::optional<uint64_t>>* out) ABSL_LOCKS_EXCLUDED(mu_);

  // Bytes held in memory (segments, filters, fences).
  size_t MemoryBytes() const ABSL_LOCKS_EXCLUDED(mu_);
  size_t RunCount() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  struct Entry {
    uint64_t sequence;
    int64_t time_us;
  };
  // Entries of sequences [first, last]; `sealed` once it takes no more.
  // Keys are packed in one buffer and found through a set of entry
  // numbers: about 30 bytes per entry beside the key, where a map of
  // strings took about 100.
  class Segment {
   public:
    explicit Segment(size_t capacity);
    Segment(const Segment&) = delete;
    Segment& operator=(const Segment&) = delete;

    // Adds the entry of `key`, or replaces an older one.
    void Put(absl::string_view key, Entry entry);
    const Entry* Find(absl::string_view key) const;
    size_t size() const { return slots_.size(); }
    size_t key_bytes() const { return keys_.size(); }
    absl::string_view key(uint32_t i) const {
      return absl::string_view(keys_.data() + slots_[i].offset, slots_[i].size);
    }
    const Entry& entry(uint32_t i) const { return slots_[i].entry; }
    size_t MemoryBytes() const;

    uint64_t first = 0;
    uint64_t last = 0;
    bool sealed = false;

   private:
    struct Slot {
      uint32_t offset;
      uint32_t size;
      Entry entry;
    };
    struct KeyHash {
      using is_transparent = void;
      const Segment* segment;
      size_t operator()(uint32_t i) const { return (*this)(segment->key(i)); }
      size_t operator()(absl::string_view key) const;
    };
    struct KeyEq {
      using is_transparent = void;
      const Segment* segment;
      bool operator()(uint32_t a, uint32_t b) const { return a == b; }
      bool operator()(uint32_t a, absl::string_view b) const { return segment->key(a) == b; }
      bool operator()(absl::string_view a, uint32_t b) const { return a == segment->key(b); }
    };
    std::string keys_;
    std::vector<Slot> slots_;
    absl::flat_hash_set<uint32_t, KeyHash, KeyEq> index_;
  };

  explicit DedupIndex(const Options& options);
  // Seals the active segment if it has entries; a new one starts after it.
  void SealActiveLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void MaybeScheduleLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Writes the oldest sealed durable segments to runs and merges; the
  // background thread's task (and PersistDurable's).
  absl::Status WriteDurableSegments() ABSL_LOCKS_EXCLUDED(mu_, write_mu_);
  absl::Status MergeAndExpire() ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_);
  std::string RunPath(uint64_t first, uint64_t last, uint32_t level) const;

  const Options options_;
  mutable absl::Mutex mu_;
  // Oldest first; the back one takes new entries unless sealed.
  std::deque<std::shared_ptr<Segment>> segments_ ABSL_GUARDED_BY(mu_);
  // Oldest first, covering consecutive sequence ranges.
  std::vector<std::shared_ptr<DedupRun>> runs_ ABSL_GUARDED_BY(mu_);
  uint64_t indexed_through_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t durable_ ABSL_GUARDED_BY(mu_) = 0;
  bool write_scheduled_ ABSL_GUARDED_BY(mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  // One writer of run files at a time (background thread or PersistDurable).
  absl::Mutex write_mu_ ABSL_ACQUIRED_BEFORE(mu_);
  std::unique_ptr<SerialWorker> worker_;  // last: stops first
};

}  // namespace pettube::broker
