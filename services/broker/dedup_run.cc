#include "services/broker/dedup_run.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/base/internal/endian.h"
#include "absl/strings/str_cat.h"
#include "services/broker/hardware_crc32c.h"

namespace pettube::broker {
namespace {

constexpr uint64_t kMagic = 0x3144445554544550ull;  // "PETTUDD1", little-endian
constexpr size_t kFooterBytes = 8 * 8 + 4 * 3 + 8;
constexpr size_t kBlockBytes = 4096;
constexpr uint32_t kBloomProbes = 7;
constexpr size_t kBloomBitsPerEntry = 10;

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
      return DedupFileError("write", path);
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
      return DedupFileError("read", path);
    }
    if (n == 0) return absl::DataLossError(absl::StrCat("dedup run ", path, ": truncated"));
    done += static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

}  // namespace

uint64_t DedupKeyHash(absl::string_view key) {
  const uint32_t crc = Crc32cExtend(0, key.data(), key.size());
  return Mix64((uint64_t{crc} << 32) ^ key.size());
}

absl::Status DedupFileError(absl::string_view what, const std::string& path) {
  const int err = errno;
  return absl::InternalError(absl::StrCat(what, " ", path, ": ", std::strerror(err)));
}

absl::Status SyncDirectory(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return DedupFileError("open", dir);
  const int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0) return DedupFileError("fsync", dir);
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<DedupRun>> DedupRun::Load(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return DedupFileError("open", path);
  auto run = std::shared_ptr<DedupRun>(new DedupRun(path, fd));
  struct stat st;
  if (::fstat(fd, &st) != 0) return DedupFileError("stat", path);
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

DedupRun::~DedupRun() { ::close(fd_); }

absl::StatusOr<std::optional<std::pair<uint64_t, int64_t>>> DedupRun::Find(absl::string_view key,
                                                                           uint64_t hash) const {
  if (fences_.empty() || !BloomMayContain(bloom_, hash)) return std::nullopt;
  // Entries of one hash may start in the block before the first fence
  // at or above it.
  size_t i = std::lower_bound(fences_.begin(), fences_.end(), hash,
                              [](const Fence& f, uint64_t h) { return f.first_hash < h; }) -
             fences_.begin();
  if (i > 0) --i;
  std::string block;
  std::vector<DedupRunEntry> entries;
  for (; i < fences_.size() && fences_[i].first_hash <= hash; ++i) {
    if (auto s = ReadBlock(i, &block, &entries); !s.ok()) return s;
    for (const DedupRunEntry& e : entries) {
      if (e.hash > hash) return std::nullopt;
      if (e.hash == hash && e.key == key) return std::make_pair(e.sequence, e.time_us);
    }
  }
  return std::nullopt;
}

absl::Status DedupRun::ReadBlock(size_t i, std::string* block,
                                 std::vector<DedupRunEntry>* out) const {
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
    DedupRunEntry e;
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

DedupRunWriter::DedupRunWriter(std::string path, uint64_t max_entries)
    : path_(std::move(path)), tmp_(path_ + ".tmp") {
  const uint64_t bytes = (std::max<uint64_t>(max_entries, 8) * kBloomBitsPerEntry + 7) / 8;
  bloom_.assign((bytes + kBloomLineBytes - 1) / kBloomLineBytes * kBloomLineBytes, '\0');
}
DedupRunWriter::~DedupRunWriter() {
  if (fd_ >= 0) {
    ::close(fd_);
    ::unlink(tmp_.c_str());
  }
}

absl::Status DedupRunWriter::Start() {
  fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd_ < 0) return DedupFileError("create", tmp_);
  return absl::OkStatus();
}

absl::Status DedupRunWriter::Add(uint64_t hash, absl::string_view key, uint64_t sequence,
                                 int64_t time_us) {
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

absl::Status DedupRunWriter::Finish(uint64_t first, uint64_t last, uint32_t level) {
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
  if (::fdatasync(fd_) != 0) return DedupFileError("fdatasync", tmp_);
  ::close(fd_);
  fd_ = -1;
  if (::rename(tmp_.c_str(), path_.c_str()) != 0) {
    const absl::Status s = DedupFileError("rename", tmp_);
    ::unlink(tmp_.c_str());
    return s;
  }
  return absl::OkStatus();
}

absl::Status DedupRunWriter::FlushBlock() {
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

bool DedupRunCursor::Next() {
  while (++at_ >= entries_.size()) {
    if (block_ >= run_.blocks()) return false;
    status_ = run_.ReadBlock(block_++, &block_bytes_, &entries_);
    at_ = 0;
    if (!status_.ok()) return false;
    if (!entries_.empty()) return true;
  }
  return true;
}

absl::Status MergeDedupRuns(const std::vector<std::shared_ptr<DedupRun>>& inputs,
                            int64_t drop_before_us, DedupRunWriter& writer) {
  absl::Status s;
  std::vector<std::unique_ptr<DedupRunCursor>> cursors;
  std::vector<bool> live;
  for (const auto& run : inputs) {
    cursors.push_back(std::make_unique<DedupRunCursor>(*run));
    live.push_back(cursors.back()->Next());
    if (!cursors.back()->status().ok()) return cursors.back()->status();
  }
  for (;;) {
    // The smallest (hash, key); among equal ones the newest run's entry.
    int best = -1;
    for (size_t i = 0; i < cursors.size(); ++i) {
      if (!live[i]) continue;
      const DedupRunEntry& e = cursors[i]->entry();
      if (best >= 0) {
        const DedupRunEntry& b = cursors[best]->entry();
        if (!DedupEntryBefore(e.hash, e.key, b.hash, b.key) &&
            (e.hash != b.hash || e.key != b.key)) {
          continue;
        }
      }
      best = static_cast<int>(i);
    }
    if (best < 0) return absl::OkStatus();
    // Written before the cursors move on (its key points into a block).
    const DedupRunEntry chosen = cursors[best]->entry();
    if (chosen.time_us >= drop_before_us) {
      if (s = writer.Add(chosen.hash, chosen.key, chosen.sequence, chosen.time_us); !s.ok()) {
        return s;
      }
    }
    // Older copies of it in the other runs are dropped; `best` moves last
    // (a run holds a key once), so `chosen` stays valid until then.
    for (size_t i = 0; i < cursors.size(); ++i) {
      if (static_cast<int>(i) == best) continue;
      while (live[i] && cursors[i]->entry().hash == chosen.hash &&
             cursors[i]->entry().key == chosen.key) {
        live[i] = cursors[i]->Next();
        if (!cursors[i]->status().ok()) return cursors[i]->status();
      }
    }
    live[best] = cursors[best]->Next();
    if (!cursors[best]->status().ok()) return cursors[best]->status();
  }
}

}  // namespace pettube::broker
