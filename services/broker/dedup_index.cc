#include "services/broker/dedup_index.h"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "libs/log/log.h"

namespace pettube::broker {
namespace {

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

DedupIndex::Segment::Segment(size_t capacity) : index_(capacity, KeyHash{this}, KeyEq{this}) {
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

namespace {
// Segments address their keys with 32-bit offsets.
DedupIndex::Options Clamped(DedupIndex::Options options) {
  options.segment_key_bytes = std::min<size_t>(options.segment_key_bytes, size_t{1} << 30);
  return options;
}
}  // namespace

DedupIndex::DedupIndex(const Options& options)
    : options_(Clamped(options)), worker_(std::make_unique<SerialWorker>()) {}

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
    return DedupFileError("create", options.dir);
  }
  auto index = std::unique_ptr<DedupIndex>(new DedupIndex(options));
  DIR* dir = ::opendir(options.dir.c_str());
  if (dir == nullptr) return DedupFileError("open", options.dir);
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
    // A gap (a run removed by hand) is treated like an unreadable run.
    absl::StatusOr<std::shared_ptr<DedupRun>> run =
        !index->runs_.empty() && found[i].first != covered + 1
            ? absl::DataLossError(absl::StrCat("dedup run ", found[i].path, " does not follow run ",
                                               index->runs_.back()->path()))
            : DedupRun::Load(found[i].path);
    if (!run.ok()) {
      // Set aside with every later run: the store re-adds their entries
      // from the log, as it does for the entries after the last run.
      log::Warning("broker.dedup_run_set_aside",
                   {{"code", run.status()}, {"rebuilt_from_sequence", covered + 1}});
      for (size_t j = i; j < found.size(); ++j) {
        ::rename(found[j].path.c_str(), (found[j].path + ".corrupt").c_str());
      }
      break;
    }
    covered = std::max(covered, (*run)->meta().last);
    index->runs_.push_back(*std::move(run));
  }
  index->indexed_through_ = covered;
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
  if (active.size() >= options_.segment_entries ||
      active.key_bytes() >= options_.segment_key_bytes) {
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
      if (segments_.empty() || !segments_.front()->sealed || segments_.front()->last > durable_) {
        break;
      }
      segment = segments_.front();
    }
    // Sealed: nothing changes it now.
    std::vector<std::pair<uint64_t, uint32_t>> sorted;  // hash, entry number
    sorted.reserve(segment->size());
    for (uint32_t i = 0; i < segment->size(); ++i) {
      sorted.emplace_back(DedupKeyHash(segment->key(i)), i);
    }
    std::sort(sorted.begin(), sorted.end(), [&](const auto& a, const auto& b) {
      return DedupEntryBefore(a.first, segment->key(a.second), b.first, segment->key(b.second));
    });
    const std::string path = RunPath(segment->first, segment->last, 0);
    DedupRunWriter writer(path, sorted.size());
    absl::Status s = writer.Start();
    for (size_t i = 0; s.ok() && i < sorted.size(); ++i) {
      const Entry& entry = segment->entry(sorted[i].second);
      s = writer.Add(sorted[i].first, segment->key(sorted[i].second), entry.sequence,
                     entry.time_us);
    }
    if (s.ok()) s = writer.Finish(segment->first, segment->last, 0);
    if (s.ok()) s = SyncDirectory(options_.dir);
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
    DedupRunWriter writer(path, total);
    absl::Status s = writer.Start();
    if (s.ok()) s = MergeDedupRuns(inputs, expired_before_us, writer);
    if (s.ok()) s = writer.Finish(first, last, level);
    if (s.ok()) s = SyncDirectory(options_.dir);
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
    const uint64_t hash = DedupKeyHash(keys[i]);
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
