#include "services/broker/dedup_index.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <iostream>
#include <utility>

#include "absl/base/internal/endian.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "services/broker/hardware_crc32c.h"

namespace pettube::broker {
namespace {

constexpr uint64_t kMagic = 0x3144445554544550ull;  // "PETTUDD1", little-endian
constexpr size_t kFooterBytes = 8 * 8 + 4 * 3 + 8;
constexpr size_t kBlockBytes = 4096;
constexpr uint32_t kBloomProbes = 7;
constexpr size_t kBloomBitsPerEntry = 10;

absl::Status PosixError(absl::string_view what, const std::string& path) {
  const int err = errno;
  return absl::InternalError(absl::StrCat(what, " ", path, ": ", std::strerror(err)));
}

uint64_t Mix64(uint64_t x) {
  // splitmix64's finalizer: spreads the CRC's bits over all 64.
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ull;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebull;
  x ^= x >> 31;
  return x;
}

// A blocked bloom filter: every probe of a key falls in one 64-byte line
// (one cache miss per run looked up), picked by the hash's high bits.
constexpr uint64_t kBloomLineBytes = 64;

bool BloomMayContain(const std::string& bloom, uint64_t hash) {
  const uint64_t lines = bloom.size() / kBloomLineBytes;
  if (lines == 0) return true;
  const char* line = bloom.data() + ((hash >> 32) % lines) * kBloomLineBytes;
  uint32_t h = static_cast<uint32_t>(hash);
  const uint32_t step = (h >> 17) | (h << 15) | 1;
  for (uint32_t i = 0; i < kBloomProbes; ++i, h += step) {
    const uint32_t bit = h % (kBloomLineBytes * 8);
    if ((static_cast<uint8_t>(line[bit / 8]) & (1u << (bit % 8))) == 0) return false;
  }
  return true;
}

void BloomAdd(std::string& bloom, uint64_t hash) {
  const uint64_t lines = bloom.size() / kBloomLineBytes;
  char* line = bloom.data() + ((hash >> 32) % lines) * kBloomLineBytes;
  uint32_t h = static_cast<uint32_t>(hash);
  const uint32_t step = (h >> 17) | (h << 15) | 1;
  for (uint32_t i = 0; i < kBloomProbes; ++i, h += step) {
    const uint32_t bit = h % (kBloomLineBytes * 8);
    line[bit / 8] = static_cast<char>(static_cast<uint8_t>(line[bit / 8]) | (1u << (bit % 8)));
  }
}

void Put32(std::string& out, uint32_t v) {
  char b[4];
  absl::little_endian::Store32(b, v);
  out.append(b, 4);
}
void Put64(std::string& out, uint64_t v) {
  char b[8];
  absl::little_endian::Store64(b, v);
  out.append(b, 8);
}

absl::Status WriteAll(int fd, const std::string& data, const std::string& path) {
  size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return PosixError("write", path);
    }
    done += static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

absl::Status ReadAt(int fd, uint64_t offset, size_t size, std::string* out,
                    const std::string& path) {
  out->resize(size);
  size_t done = 0;
  while (done < size) {
    const ssize_t n = ::pread(fd, out->data() + done, size - done, offset + done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return PosixError("read", path);
    }
    if (n == 0) return absl::DataLossError(absl::StrCat("dedup run ", path, ": truncated"));
    done += static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

absl::Status SyncDir(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return PosixError("open", dir);
  const int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0) return PosixError("fsync", dir);
  return absl::OkStatus();
}

}  // namespace

// ------------------------------------------------------------------ runs

// One entry of a run, as read back: the key points into the block read.
struct RunEntry {
  uint64_t hash = 0;
  absl::string_view key;
  uint64_t sequence = 0;
  int64_t time_us = 0;
};

// An immutable run file: blocks of entries sorted by (hash, key), each
// with a count and a CRC-32C; then fences (each block's first hash and
// place), a bloom filter over the hashes, and a footer (with the CRC of
// fences, filter and footer). Only the fences and the filter are held in
// memory; blocks are read on a filter hit.
class DedupRun {
 public:
  struct Meta {
    uint64_t first = 0;  // the sequences covered
    uint64_t last = 0;
    uint32_t level = 0;
    uint64_t entries = 0;
    int64_t max_time_us = 0;
  };

  static absl::StatusOr<std::shared_ptr<DedupRun>> Load(const std::string& path) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return PosixError("open", path);
    auto run = std::shared_ptr<DedupRun>(new DedupRun(path, fd));
    struct stat st;
    if (::fstat(fd, &st) != 0) return PosixError("stat", path);
    const uint64_t size = static_cast<uint64_t>(st.st_size);
    auto corrupt = [&](absl::string_view why) {
      return absl::DataLossError(absl::StrCat("dedup run ", path, ": ", why));
    };
    if (size < kFooterBytes) return corrupt("shorter than its footer");
    std::string footer;
    if (auto s = ReadAt(fd, size - kFooterBytes, kFooterBytes, &footer, path); !s.ok()) return s;
    const char* f = footer.data();
    if (absl::little_endian::Load64(f + kFooterBytes - 8) != kMagic) return corrupt("bad magic");
    const uint64_t index_off = absl::little_endian::Load64(f);
    const uint64_t index_size = absl::little_endian::Load64(f + 8);
    const uint64_t bloom_off = absl::little_endian::Load64(f + 16);
    const uint64_t bloom_size = absl::little_endian::Load64(f + 24);
    run->meta_.entries = absl::little_endian::Load64(f + 32);
    run->meta_.first = absl::little_endian::Load64(f + 40);
    run->meta_.last = absl::little_endian::Load64(f + 48);
    run->meta_.max_time_us = static_cast<int64_t>(absl::little_endian::Load64(f + 56));
    run->meta_.level = absl::little_endian::Load32(f + 64);
    const uint32_t blocks = absl::little_endian::Load32(f + 68);
    const uint32_t crc = absl::little_endian::Load32(f + 72);
    if (index_off + index_size != bloom_off || bloom_off + bloom_size + kFooterBytes != size ||
        index_size != uint64_t{blocks} * 20) {
      return corrupt("sections do not add up");
    }
    std::string index;
    if (auto s = ReadAt(fd, index_off, index_size, &index, path); !s.ok()) return s;
    if (auto s = ReadAt(fd, bloom_off, bloom_size, &run->bloom_, path); !s.ok()) return s;
    uint32_t check = Crc32cExtend(0, index.data(), index.size());
    check = Crc32cExtend(check, run->bloom_.data(), run->bloom_.size());
    check = Crc32cExtend(check, f, 72);
    if (check != crc) return corrupt("checksum mismatch");
    run->fences_.resize(blocks);
    for (uint32_t i = 0; i < blocks; ++i) {
      const char* p = index.data() + i * 20;
      run->fences_[i] = {absl::little_endian::Load64(p), absl::little_endian::Load64(p + 8),
                         absl::little_endian::Load32(p + 16)};
      if (run->fences_[i].offset + run->fences_[i].size > index_off) {
        return corrupt("block beyond the data");
      }
    }
    return run;
  }

  ~DedupRun() { ::close(fd_); }

  const Meta& meta() const { return meta_; }
  const std::string& path() const { return path_; }
  size_t MemoryBytes() const { return bloom_.size() + fences_.size() * sizeof(Fence); }
  size_t blocks() const { return fences_.size(); }

  // The sequence and time of `key`'s entry (whose hash is `hash`), if the
  // run holds it.
  absl::StatusOr<std::optional<std::pair<uint64_t, int64_t>>> Find(absl::string_view key,
                                                                   uint64_t hash) const {
    if (fences_.empty() || !BloomMayContain(bloom_, hash)) return std::nullopt;
    // Entries of one hash may start in the block before the first fence
    // at or above it.
    size_t i = std::lower_bound(fences_.begin(), fences_.end(), hash,
                                [](const Fence& f, uint64_t h) { return f.first_hash < h; }) -
               fences_.begin();
    if (i > 0) --i;
    std::string block;
    std::vector<RunEntry> entries;
    for (; i < fences_.size() && fences_[i].first_hash <= hash; ++i) {
      if (auto s = ReadBlock(i, &block, &entries); !s.ok()) return s;
      for (const RunEntry& e : entries) {
        if (e.hash > hash) return std::nullopt;
        if (e.hash == hash && e.key == key) return std::make_pair(e.sequence, e.time_us);
      }
    }
    return std::nullopt;
  }

  // Reads block `i` into `block` and its entries (pointing into it) into
  // `out`, checking its CRC.
  absl::Status ReadBlock(size_t i, std::string* block, std::vector<RunEntry>* out) const {
    out->clear();
    const Fence& fence = fences_[i];
    if (auto s = ReadAt(fd_, fence.offset, fence.size, block, path_); !s.ok()) return s;
    auto corrupt = [&] {
      return absl::DataLossError(absl::StrCat("dedup run ", path_, ": block ", i, " corrupt"));
    };
    const char* data = block->data();
    if (block->size() < 8) return corrupt();
    const size_t body = block->size() - 8;
    if (Crc32cExtend(0, data, body + 4) != absl::little_endian::Load32(data + body + 4)) {
      return corrupt();
    }
    const uint32_t count = absl::little_endian::Load32(data + body);
    out->reserve(count);
    size_t at = 0;
    for (uint32_t k = 0; k < count; ++k) {
      if (body - at < 12) return corrupt();
      RunEntry e;
      e.hash = absl::little_endian::Load64(data + at);
      const uint32_t len = absl::little_endian::Load32(data + at + 8);
      at += 12;
      if (len > body - at || body - at - len < 16) return corrupt();
      e.key = absl::string_view(data + at, len);
      at += len;
      e.sequence = absl::little_endian::Load64(data + at);
      e.time_us = static_cast<int64_t>(absl::little_endian::Load64(data + at + 8));
      at += 16;
      out->push_back(e);
    }
    return absl::OkStatus();
  }

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

namespace {

// Writes a run: entries added in (hash, key) order, then Finish. The file
// is written under a temporary name, synced and renamed, so it appears
// whole or not at all.
class RunWriter {
 public:
  RunWriter(std::string path, uint64_t max_entries)
      : path_(std::move(path)), tmp_(path_ + ".tmp") {
    const uint64_t bytes = (std::max<uint64_t>(max_entries, 8) * kBloomBitsPerEntry + 7) / 8;
    bloom_.assign((bytes + kBloomLineBytes - 1) / kBloomLineBytes * kBloomLineBytes, '\0');
  }
  ~RunWriter() {
    if (fd_ >= 0) {
      ::close(fd_);
      ::unlink(tmp_.c_str());
    }
  }

  absl::Status Start() {
    fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd_ < 0) return PosixError("create", tmp_);
    return absl::OkStatus();
  }

  absl::Status Add(uint64_t hash, absl::string_view key, uint64_t sequence, int64_t time_us) {
    if (block_count_ == 0) first_hash_ = hash;
    Put64(block_, hash);
    Put32(block_, static_cast<uint32_t>(key.size()));
    block_.append(key.data(), key.size());
    Put64(block_, sequence);
    Put64(block_, static_cast<uint64_t>(time_us));
    ++block_count_;
    ++entries_;
    max_time_us_ = std::max(max_time_us_, time_us);
    BloomAdd(bloom_, hash);
    if (block_.size() >= kBlockBytes) return FlushBlock();
    return absl::OkStatus();
  }

  absl::Status Finish(uint64_t first, uint64_t last, uint32_t level) {
    if (auto s = FlushBlock(); !s.ok()) return s;
    std::string tail;
    for (const auto& [hash, offset, size] : fences_) {
      Put64(tail, hash);
      Put64(tail, offset);
      Put32(tail, size);
    }
    const uint64_t index_size = tail.size();
    tail += bloom_;
    std::string footer;
    Put64(footer, offset_);
    Put64(footer, index_size);
    Put64(footer, offset_ + index_size);
    Put64(footer, bloom_.size());
    Put64(footer, entries_);
    Put64(footer, first);
    Put64(footer, last);
    Put64(footer, static_cast<uint64_t>(max_time_us_));
    Put32(footer, level);
    Put32(footer, static_cast<uint32_t>(fences_.size()));
    uint32_t crc = Crc32cExtend(0, tail.data(), tail.size());
    crc = Crc32cExtend(crc, footer.data(), footer.size());
    Put32(footer, crc);
    Put64(footer, kMagic);
    tail += footer;
    if (auto s = WriteAll(fd_, tail, tmp_); !s.ok()) return s;
    if (::fdatasync(fd_) != 0) return PosixError("fdatasync", tmp_);
    ::close(fd_);
    fd_ = -1;
    if (::rename(tmp_.c_str(), path_.c_str()) != 0) {
      const absl::Status s = PosixError("rename", tmp_);
      ::unlink(tmp_.c_str());
      return s;
    }
    return absl::OkStatus();
  }

  uint64_t entries() const { return entries_; }

 private:
  absl::Status FlushBlock() {
    if (block_count_ == 0) return absl::OkStatus();
    Put32(block_, block_count_);
    Put32(block_, Crc32cExtend(0, block_.data(), block_.size()));
    fences_.push_back({first_hash_, offset_, static_cast<uint32_t>(block_.size())});
    offset_ += block_.size();
    const absl::Status s = WriteAll(fd_, block_, tmp_);
    block_.clear();
    block_count_ = 0;
    return s;
  }

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
class RunCursor {
 public:
  explicit RunCursor(const DedupRun& run) : run_(run) {}
  // Moves to the next entry; false at the end (or on error: see status).
  bool Next() {
    while (++at_ >= entries_.size()) {
      if (block_ >= run_.blocks()) return false;
      status_ = run_.ReadBlock(block_++, &block_bytes_, &entries_);
      at_ = 0;
      if (!status_.ok()) return false;
      if (!entries_.empty()) return true;
      at_ = 0;
    }
    return true;
  }
  const RunEntry& entry() const { return entries_[at_]; }
  const absl::Status& status() const { return status_; }

 private:
  const DedupRun& run_;
  std::string block_bytes_;
  std::vector<RunEntry> entries_;
  size_t at_ = 0;
  size_t block_ = 0;
  absl::Status status_;
};

bool Before(uint64_t ha, absl::string_view ka, uint64_t hb, absl::string_view kb) {
  return ha != hb ? ha < hb : ka < kb;
}

// "run-<first>-<last>-<level>" as written by RunPath; false for any other
// name.
bool ParseRunName(absl::string_view name, uint64_t* first, uint64_t* last, uint32_t* level) {
  if (!absl::ConsumePrefix(&name, "run-") || !absl::ConsumeSuffix(&name, ".dedup")) return false;
  std::vector<absl::string_view> parts = absl::StrSplit(name, '-');
  return parts.size() == 3 && absl::SimpleAtoi(parts[0], first) &&
         absl::SimpleAtoi(parts[1], last) && absl::SimpleAtoi(parts[2], level);
}

}  // namespace

// ----------------------------------------------------------------- index

DedupIndex::Segment::Segment(size_t capacity)
    : index_(capacity, KeyHash{this}, KeyEq{this}) {
  slots_.reserve(capacity);
}

size_t DedupIndex::Segment::KeyHash::operator()(absl::string_view key) const {
  return absl::Hash<absl::string_view>()(key);
}

void DedupIndex::Segment::Put(absl::string_view key, Entry entry) {
  if (auto it = index_.find(key); it != index_.end()) {
    slots_[*it].entry = entry;
    return;
  }
  slots_.push_back({static_cast<uint32_t>(keys_.size()), static_cast<uint32_t>(key.size()), entry});
  keys_.append(key.data(), key.size());
  index_.insert(static_cast<uint32_t>(slots_.size() - 1));
}

const DedupIndex::Entry* DedupIndex::Segment::Find(absl::string_view key) const {
  auto it = index_.find(key);
  return it == index_.end() ? nullptr : &slots_[*it].entry;
}

size_t DedupIndex::Segment::MemoryBytes() const {
  return keys_.capacity() + slots_.capacity() * sizeof(Slot) +
         index_.capacity() * (sizeof(uint32_t) + 1);
}

uint64_t DedupIndex::KeyHash(absl::string_view key) {
  // Stable across builds and processes (it orders the files): CRC-32C,
  // spread by a mixer; collisions only cost a block read.
  const uint32_t crc = Crc32cExtend(0, key.data(), key.size());
  return Mix64((uint64_t{crc} << 32) ^ key.size());
}

DedupIndex::DedupIndex(const Options& options)
    : options_(options), worker_(std::make_unique<SerialWorker>()) {}

DedupIndex::~DedupIndex() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;  // the task in progress schedules no other
  }
  worker_.reset();  // waits for a run being written, drops the rest
}

std::string DedupIndex::RunPath(uint64_t first, uint64_t last, uint32_t level) const {
  return absl::StrCat(options_.dir, "/run-", first, "-", last, "-", level, ".dedup");
}

absl::StatusOr<std::unique_ptr<DedupIndex>> DedupIndex::Open(const Options& options) {
  if (::mkdir(options.dir.c_str(), 0755) != 0 && errno != EEXIST) {
    return PosixError("create", options.dir);
  }
  auto index = std::unique_ptr<DedupIndex>(new DedupIndex(options));
  DIR* dir = ::opendir(options.dir.c_str());
  if (dir == nullptr) return PosixError("open", options.dir);
  std::vector<std::string> names;
  while (struct dirent* d = ::readdir(dir)) names.emplace_back(d->d_name);
  ::closedir(dir);
  struct Found {
    std::string path;
    uint64_t first, last;
  };
  std::vector<Found> found;
  for (const std::string& name : names) {
    const std::string path = absl::StrCat(options.dir, "/", name);
    if (absl::EndsWith(name, ".dedup.tmp")) {
      ::unlink(path.c_str());  // a run whose writing a crash cut short
      continue;
    }
    uint64_t first, last;
    uint32_t level;
    if (ParseRunName(name, &first, &last, &level)) found.push_back({path, first, last});
  }
  // Oldest first; a crash between a merge's rename and its inputs' removal
  // leaves runs that the merged one covers: they are dropped.
  std::sort(found.begin(), found.end(), [](const Found& a, const Found& b) {
    return a.first != b.first ? a.first < b.first : a.last > b.last;
  });
  absl::MutexLock lock(&index->mu_);
  uint64_t covered = 0;
  for (size_t i = 0; i < found.size(); ++i) {
    if (!index->runs_.empty() && found[i].last <= covered) {
      ::unlink(found[i].path.c_str());
      continue;
    }
    auto run = DedupRun::Load(found[i].path);
    if (!run.ok()) {
      // Unreadable (the disk corrupted it): set aside with every later
      // run, whose entries the store re-adds from the log, as it does for
      // the entries after the last run.
      std::cerr << "dedup index: " << run.status() << "; rebuilding from sequence " << covered + 1
                << " from the log\n";
      for (size_t j = i; j < found.size(); ++j) {
        ::rename(found[j].path.c_str(), (found[j].path + ".corrupt").c_str());
      }
      break;
    }
    covered = std::max(covered, (*run)->meta().last);
    index->runs_.push_back(*std::move(run));
  }
  index->indexed_through_ = covered;
  index->last_added_ = covered;
  index->durable_ = covered;
  return index;
}

uint64_t DedupIndex::IndexedThrough() const {
  absl::MutexLock lock(&mu_);
  return indexed_through_;
}

void DedupIndex::Add(absl::string_view key, uint64_t sequence, absl::Time publish_time) {
  absl::MutexLock lock(&mu_);
  if (segments_.empty() || segments_.back()->sealed) {
    auto segment = std::make_shared<Segment>(options_.segment_entries);
    segment->first = segments_.empty() ? indexed_through_ + 1 : segments_.back()->last + 1;
    segments_.push_back(std::move(segment));
  }
  Segment& active = *segments_.back();
  const Entry entry{sequence, absl::ToUnixMicros(publish_time)};
  active.Put(key, entry);  // a newer copy: re-published after its window ended
  active.last = std::max(active.last, sequence);
  last_added_ = std::max(last_added_, sequence);
  if (active.size() >= options_.segment_entries ||
      active.key_bytes() >= std::min<size_t>(options_.segment_key_bytes, size_t{1} << 30)) {
    active.sealed = true;
    MaybeScheduleLocked();
  }
}

void DedupIndex::MarkDurable(uint64_t sequence) {
  absl::MutexLock lock(&mu_);
  if (sequence <= durable_) return;
  durable_ = sequence;
  MaybeScheduleLocked();
}

void DedupIndex::SealActiveLocked() {
  if (!segments_.empty() && !segments_.back()->sealed && segments_.back()->size() > 0) {
    segments_.back()->sealed = true;
  }
}

void DedupIndex::MaybeScheduleLocked() {
  if (stopping_ || write_scheduled_ || segments_.empty()) return;
  const Segment& oldest = *segments_.front();
  if (!oldest.sealed || oldest.last > durable_) return;
  write_scheduled_ = true;
  worker_->Post([this] {
    const absl::Status s = WriteDurableSegments();
    absl::MutexLock lock(&mu_);
    write_scheduled_ = false;
    // A failed write keeps its segment in memory (still found by
    // lookups); the next seal tries again.
    if (s.ok()) MaybeScheduleLocked();
  });
}

absl::Status DedupIndex::PersistDurable() {
  {
    absl::MutexLock lock(&mu_);
    // Sealed even if not all durable: the rest is written as soon as it is.
    SealActiveLocked();
  }
  return WriteDurableSegments();
}

absl::Status DedupIndex::WriteDurableSegments() {
  absl::MutexLock write_lock(&write_mu_);
  for (;;) {
    std::shared_ptr<Segment> segment;
    {
      absl::MutexLock lock(&mu_);
      if (segments_.empty() || !segments_.front()->sealed ||
          segments_.front()->last > durable_) {
        break;
      }
      segment = segments_.front();
    }
    // Sealed: nothing changes it now.
    std::vector<std::pair<uint64_t, uint32_t>> sorted;  // hash, entry number
    sorted.reserve(segment->size());
    for (uint32_t i = 0; i < segment->size(); ++i) {
      sorted.emplace_back(KeyHash(segment->key(i)), i);
    }
    std::sort(sorted.begin(), sorted.end(), [&](const auto& a, const auto& b) {
      return Before(a.first, segment->key(a.second), b.first, segment->key(b.second));
    });
    const std::string path = RunPath(segment->first, segment->last, 0);
    RunWriter writer(path, sorted.size());
    absl::Status s = writer.Start();
    for (size_t i = 0; s.ok() && i < sorted.size(); ++i) {
      const Entry& entry = segment->entry(sorted[i].second);
      s = writer.Add(sorted[i].first, segment->key(sorted[i].second), entry.sequence,
                     entry.time_us);
    }
    if (s.ok()) s = writer.Finish(segment->first, segment->last, 0);
    if (s.ok()) s = SyncDir(options_.dir);
    if (!s.ok()) return s;
    auto run = DedupRun::Load(path);
    if (!run.ok()) return run.status();
    absl::MutexLock lock(&mu_);
    runs_.push_back(*std::move(run));
    indexed_through_ = segment->last;
    segments_.pop_front();
  }
  return MergeAndExpire();
}

absl::Status DedupIndex::MergeAndExpire() {
  const int64_t expired_before_us = absl::ToUnixMicros(absl::Now() - options_.window);
  // Whole runs past the window go (the newest stays: it records how far
  // the runs reach).
  std::vector<std::shared_ptr<DedupRun>> expired;
  {
    absl::MutexLock lock(&mu_);
    while (runs_.size() > 1 && runs_.front()->meta().max_time_us < expired_before_us) {
      expired.push_back(runs_.front());
      runs_.erase(runs_.begin());
    }
  }
  for (const auto& run : expired) ::unlink(run->path().c_str());
  for (;;) {
    std::vector<std::shared_ptr<DedupRun>> inputs;
    {
      absl::MutexLock lock(&mu_);
      const size_t w = options_.merge_width;
      if (runs_.size() < w) break;
      const uint32_t level = runs_.back()->meta().level;
      bool same = true;
      for (size_t i = runs_.size() - w; i < runs_.size(); ++i) {
        same &= runs_[i]->meta().level == level;
      }
      if (!same) break;
      inputs.assign(runs_.end() - static_cast<ptrdiff_t>(w), runs_.end());
    }
    uint64_t total = 0;
    for (const auto& run : inputs) total += run->meta().entries;
    const uint64_t first = inputs.front()->meta().first;
    const uint64_t last = inputs.back()->meta().last;
    const uint32_t level = inputs.back()->meta().level + 1;
    const std::string path = RunPath(first, last, level);
    RunWriter writer(path, total);
    absl::Status s = writer.Start();
    std::vector<std::unique_ptr<RunCursor>> cursors;
    std::vector<bool> live;
    for (const auto& run : inputs) {
      cursors.push_back(std::make_unique<RunCursor>(*run));
      live.push_back(cursors.back()->Next());
      if (!cursors.back()->status().ok()) s = cursors.back()->status();
    }
    while (s.ok()) {
      // The smallest (hash, key); among equal ones the newest run's entry.
      int best = -1;
      for (size_t i = 0; i < cursors.size(); ++i) {
        if (!live[i]) continue;
        const RunEntry& e = cursors[i]->entry();
        if (best < 0) {
          best = static_cast<int>(i);
          continue;
        }
        const RunEntry& b = cursors[best]->entry();
        if (Before(e.hash, e.key, b.hash, b.key) || (e.hash == b.hash && e.key == b.key)) {
          best = static_cast<int>(i);
        }
      }
      if (best < 0) break;
      // Written before the cursors move on (its key points into a block).
      const RunEntry chosen = cursors[best]->entry();
      if (chosen.time_us >= expired_before_us) {
        s = writer.Add(chosen.hash, chosen.key, chosen.sequence, chosen.time_us);
      }
      // Older copies of it in the other runs are dropped; `best` moves last
      // (a run holds a key once), so `chosen` stays valid until then.
      for (size_t i = 0; s.ok() && i < cursors.size(); ++i) {
        if (static_cast<int>(i) == best) continue;
        while (live[i] && cursors[i]->entry().hash == chosen.hash &&
               cursors[i]->entry().key == chosen.key) {
          live[i] = cursors[i]->Next();
          if (!cursors[i]->status().ok()) s = cursors[i]->status();
        }
      }
      live[best] = cursors[best]->Next();
      if (!cursors[best]->status().ok()) s = cursors[best]->status();
    }
    if (s.ok()) s = writer.Finish(first, last, level);
    if (s.ok()) s = SyncDir(options_.dir);
    if (!s.ok()) return s;
    auto merged = DedupRun::Load(path);
    if (!merged.ok()) return merged.status();
    {
      absl::MutexLock lock(&mu_);
      runs_.erase(runs_.end() - static_cast<ptrdiff_t>(inputs.size()), runs_.end());
      runs_.push_back(*std::move(merged));
    }
    for (const auto& run : inputs) ::unlink(run->path().c_str());
  }
  return absl::OkStatus();
}

absl::Status DedupIndex::Lookup(absl::Span<const std::string> keys, absl::Time not_before,
                                std::vector<std::optional<uint64_t>>* out) {
  const int64_t not_before_us = absl::ToUnixMicros(not_before);
  out->assign(keys.size(), std::nullopt);
  // Keys not in memory, looked up in the runs.
  std::vector<size_t> in_runs;
  std::vector<std::shared_ptr<DedupRun>> runs;
  {
    absl::MutexLock lock(&mu_);
    for (size_t i = 0; i < keys.size(); ++i) {
      bool found_in_memory = false;
      for (auto it = segments_.rbegin(); it != segments_.rend(); ++it) {
        const Entry* found = (*it)->Find(keys[i]);
        if (found == nullptr) continue;
        if (found->time_us >= not_before_us) (*out)[i] = found->sequence;
        found_in_memory = true;
        break;
      }
      if (!found_in_memory) in_runs.push_back(i);
    }
    if (!in_runs.empty()) runs = runs_;
  }
  for (size_t i : in_runs) {
    const uint64_t hash = KeyHash(keys[i]);
    for (auto it = runs.rbegin(); it != runs.rend(); ++it) {
      auto found = (*it)->Find(keys[i], hash);
      if (!found.ok()) return found.status();
      if (!found->has_value()) continue;
      if ((*found)->second >= not_before_us) (*out)[i] = (*found)->first;
      break;  // older runs hold only older entries
    }
  }
  return absl::OkStatus();
}

size_t DedupIndex::MemoryBytes() const {
  absl::MutexLock lock(&mu_);
  size_t bytes = 0;
  for (const auto& segment : segments_) {
    bytes += segment->MemoryBytes();
  }
  for (const auto& run : runs_) bytes += run->MemoryBytes();
  return bytes;
}

size_t DedupIndex::RunCount() const {
  absl::MutexLock lock(&mu_);
  return runs_.size();
}

}  // namespace pettube::broker
