#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace pettube::broker {

// The dedup table's run files (DedupIndex): immutable, sorted by
// (DedupKeyHash(key), key). A file holds blocks of about 4 KiB, each with
// its entry count and a CRC-32C; then fences (each block's first hash and
// place), a blocked bloom filter over the hashes, and a footer (the
// sequences covered, level, newest time, and the CRC of fences, filter and
// footer). Only fences and filter are held in memory; a block is read on a
// filter hit.

// The order of entries in runs: a hash stable across builds and processes
// (CRC-32C, spread by a mixer; a collision only costs a block read), then
// the key.
uint64_t DedupKeyHash(absl::string_view key);
inline bool DedupEntryBefore(uint64_t hash_a, absl::string_view key_a, uint64_t hash_b,
                             absl::string_view key_b) {
  return hash_a != hash_b ? hash_a < hash_b : key_a < key_b;
}

// An error from a file call, with errno's text.
absl::Status DedupFileError(absl::string_view what, const std::string& path);
// fsyncs a directory (after a rename into it).
absl::Status SyncDirectory(const std::string& dir);

// One entry as read back: the key points into the block it was read from.
struct DedupRunEntry {
  uint64_t hash = 0;
  absl::string_view key;
  uint64_t sequence = 0;
  int64_t time_us = 0;
};

class DedupRun {
 public:
  struct Meta {
    uint64_t first = 0;  // the sequences covered
    uint64_t last = 0;
    uint32_t level = 0;  // 0: a segment written; n + 1: a merge of level n
    uint64_t entries = 0;
    int64_t max_time_us = 0;
  };

  // DATA_LOSS for a file that is short, or fails its checks.
  static absl::StatusOr<std::shared_ptr<DedupRun>> Load(const std::string& path);
  ~DedupRun();
  DedupRun(const DedupRun&) = delete;
  DedupRun& operator=(const DedupRun&) = delete;

  const Meta& meta() const { return meta_; }
  const std::string& path() const { return path_; }
  size_t MemoryBytes() const { return bloom_.size() + fences_.size() * sizeof(Fence); }
  size_t blocks() const { return fences_.size(); }

  // The sequence and time of `key`'s entry (whose hash is `hash`), if the
  // run holds it. Thread-safe.
  absl::StatusOr<std::optional<std::pair<uint64_t, int64_t>>> Find(absl::string_view key,
                                                                   uint64_t hash) const;
  // Reads block `i` into `block` and its entries (pointing into it) into
  // `out`, checking its CRC.
  absl::Status ReadBlock(size_t i, std::string* block, std::vector<DedupRunEntry>* out) const;

 private:
  struct Fence {
    uint64_t first_hash;
    uint64_t offset;
    uint32_t size;
  };
  DedupRun(std::string path, int fd) : path_(std::move(path)), fd_(fd) {}

  const std::string path_;
  const int fd_;
  Meta meta_;
  std::vector<Fence> fences_;
  std::string bloom_;
};

// Writes a run: Start, entries added in DedupEntryBefore order, then
// Finish. The file is written under a temporary name (`path` + ".tmp"),
// fdatasynced and renamed, so it appears whole or not at all (the caller
// syncs the directory). Destroyed unfinished, it removes the temporary.
class DedupRunWriter {
 public:
  // `max_entries` sizes the filter (at most that many are added).
  DedupRunWriter(std::string path, uint64_t max_entries);
  ~DedupRunWriter();
  DedupRunWriter(const DedupRunWriter&) = delete;
  DedupRunWriter& operator=(const DedupRunWriter&) = delete;

  absl::Status Start();
  absl::Status Add(uint64_t hash, absl::string_view key, uint64_t sequence, int64_t time_us);
  absl::Status Finish(uint64_t first, uint64_t last, uint32_t level);

 private:
  absl::Status FlushBlock();

  struct Fence {
    uint64_t hash;
    uint64_t offset;
    uint32_t size;
  };
  const std::string path_;
  const std::string tmp_;
  int fd_ = -1;
  std::string block_;
  uint32_t block_count_ = 0;
  uint64_t first_hash_ = 0;
  uint64_t offset_ = 0;
  uint64_t entries_ = 0;
  int64_t max_time_us_ = 0;
  std::vector<Fence> fences_;
  std::string bloom_;
};

// Reads a run's entries in order, a block at a time (merges).
class DedupRunCursor {
 public:
  explicit DedupRunCursor(const DedupRun& run) : run_(run) {}
  // Moves to the next entry; false at the end, or on an error (status()).
  bool Next();
  // Valid until the next Next().
  const DedupRunEntry& entry() const { return entries_[at_]; }
  const absl::Status& status() const { return status_; }

 private:
  const DedupRun& run_;
  std::string block_bytes_;
  std::vector<DedupRunEntry> entries_;
  size_t at_ = 0;
  size_t block_ = 0;
  absl::Status status_;
};

// Adds to `writer` the entries of `inputs` (runs oldest first) in order:
// of a key held by several, only the newest run's entry; none published
// before `drop_before_us`.
absl::Status MergeDedupRuns(const std::vector<std::shared_ptr<DedupRun>>& inputs,
                            int64_t drop_before_us, DedupRunWriter& writer);

}  // namespace pettube::broker
