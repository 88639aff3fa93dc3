#include "services/broker/in_memory_broker_store.h"

#include <functional>
#include <utility>

#include "absl/strings/str_cat.h"

namespace pettube::broker {
namespace {

using State = InMemoryBrokerStore::State;

std::string DedupKey(absl::string_view source, absl::string_view id) {
  return absl::StrCat(source, absl::string_view("\0", 1), id);
}

template <typename Map>
void EraseSubscriptionRange(Map& m, uint32_t sub, uint64_t from, uint64_t to) {
  m.erase(m.lower_bound({sub, from}), m.lower_bound({sub, to}));
}

template <typename Map>
void EraseSubscription(Map& m, uint32_t sub) {
  m.erase(m.lower_bound({sub, 0}), m.lower_bound({sub + 1, 0}));
}

// Records the mutations; Write applies them in order under the store's lock.
class InMemoryBatch : public BrokerStore::Batch {
 public:
  void PutEvent(const StoredEvent& e) override {
    ops_.push_back([e](State& s) {
      auto [it, added] = s.events.insert_or_assign(e.sequence, e);
      if (added) s.event_bytes += static_cast<int64_t>(e.wire.size());
    });
  }
  void DeleteEventsBefore(uint64_t sequence) override {
    ops_.push_back([sequence](State& s) {
      auto end = s.events.lower_bound(sequence);
      for (auto it = s.events.begin(); it != end; ++it) {
        s.event_bytes -= static_cast<int64_t>(it->second.wire.size());
      }
      s.events.erase(s.events.begin(), end);
    });
  }
  void PutDedup(absl::string_view source, absl::string_view id, uint64_t sequence,
                absl::Time publish_time) override {
    ops_.push_back([key = DedupKey(source, id), sequence, publish_time](State& s) {
      s.dedup[key] = {sequence, publish_time};
    });
  }
  void Enqueue(uint32_t sub, uint64_t seq) override {
    ops_.push_back([sub, seq](State& s) { s.queue.insert({sub, seq}); });
  }
  void Dequeue(uint32_t sub, uint64_t seq) override {
    ops_.push_back([sub, seq](State& s) { s.queue.erase({sub, seq}); });
  }
  void DequeueRange(uint32_t sub, uint64_t from, uint64_t to) override {
    ops_.push_back([sub, from, to](State& s) { EraseSubscriptionRange(s.queue, sub, from, to); });
  }
  void SetAckFloor(uint32_t sub, uint64_t floor) override {
    ops_.push_back([sub, floor](State& s) { s.floors[sub] = floor; });
  }
  void PutPending(uint32_t sub, uint64_t seq, const storage::PendingRecord& r) override {
    ops_.push_back([sub, seq, r](State& s) { s.pending[{sub, seq}] = r; });
  }
  void DeletePending(uint32_t sub, uint64_t seq) override {
    ops_.push_back([sub, seq](State& s) { s.pending.erase({sub, seq}); });
  }
  void PutDeadLetter(uint32_t sub, const v1::DeadLetter& d) override {
    ops_.push_back([sub, d](State& s) { s.dead[{sub, d.sequence()}] = d; });
  }
  void DeleteDeadLetter(uint32_t sub, uint64_t seq) override {
    ops_.push_back([sub, seq](State& s) { s.dead.erase({sub, seq}); });
  }
  void PutSubscription(const storage::SubscriptionRecord& r) override {
    ops_.push_back([r](State& s) { s.subscriptions[r.subscription().name()] = r; });
  }
  void DeleteSubscription(const std::string& name, uint32_t id) override {
    ops_.push_back([name, id](State& s) {
      s.subscriptions.erase(name);
      s.floors.erase(id);
      EraseSubscription(s.queue, id);
      EraseSubscription(s.pending, id);
      EraseSubscription(s.dead, id);
    });
  }
  void ClearQueue(uint32_t id) override {
    ops_.push_back([id](State& s) {
      s.floors.erase(id);
      EraseSubscription(s.queue, id);
      EraseSubscription(s.pending, id);
    });
  }
  void SetLastSequence(uint64_t seq) override {
    ops_.push_back([seq](State& s) { s.last_sequence = seq; });
  }
  void SetNextSubscriptionId(uint32_t id) override {
    ops_.push_back([id](State& s) { s.next_subscription_id = id; });
  }
  size_t Count() const override { return ops_.size(); }

  void ApplyTo(State& s) {
    for (auto& op : ops_) op(s);
  }

 private:
  std::vector<std::function<void(State&)>> ops_;
};

uint64_t FloorOf(const State& s, uint32_t sub) {
  auto it = s.floors.find(sub);
  return it == s.floors.end() ? 0 : it->second;
}

}  // namespace

std::unique_ptr<BrokerStore::Batch> InMemoryBrokerStore::NewBatch() {
  return std::make_unique<InMemoryBatch>();
}

absl::Status InMemoryBrokerStore::Write(Batch& batch, bool) {
  absl::MutexLock lock(&mu_);
  if (!fail_writes_.ok()) return fail_writes_;
  static_cast<InMemoryBatch&>(batch).ApplyTo(state_);
  ++writes_;
  return absl::OkStatus();
}

absl::StatusOr<std::optional<StoredEvent>> InMemoryBrokerStore::GetEvent(uint64_t sequence) {
  absl::MutexLock lock(&mu_);
  auto it = state_.events.find(sequence);
  if (it == state_.events.end()) return std::nullopt;
  return it->second;
}

absl::Status InMemoryBrokerStore::GetEvents(const std::vector<uint64_t>& sequences,
                                            std::vector<std::optional<StoredEvent>>* out) {
  absl::MutexLock lock(&mu_);
  out->clear();
  out->resize(sequences.size());
  for (size_t i = 0; i < sequences.size(); ++i) {
    auto it = state_.events.find(sequences[i]);
    if (it != state_.events.end()) (*out)[i] = it->second;
  }
  return absl::OkStatus();
}

absl::StatusOr<std::optional<uint64_t>> InMemoryBrokerStore::LookupDedup(absl::string_view source,
                                                                         absl::string_view id,
                                                                         absl::Time not_before) {
  absl::MutexLock lock(&mu_);
  auto it = state_.dedup.find(DedupKey(source, id));
  if (it == state_.dedup.end() || it->second.second < not_before) return std::nullopt;
  return it->second.first;
}

absl::Status InMemoryBrokerStore::ScanEvents(uint64_t from,
                                             const std::function<bool(const StoredEvent&)>& visit) {
  // Visited without the lock (a visitor may read the store): one event at
  // a time, found again after each visit.
  for (uint64_t next = from;;) {
    StoredEvent e;
    {
      absl::MutexLock lock(&mu_);
      auto it = state_.events.lower_bound(next);
      if (it == state_.events.end()) return absl::OkStatus();
      e = it->second;
    }
    if (!visit(e)) return absl::OkStatus();
    next = e.sequence + 1;
  }
}

absl::Status InMemoryBrokerStore::ScanQueue(uint32_t sub, uint64_t from, size_t max,
                                            std::vector<uint64_t>* out) {
  absl::MutexLock lock(&mu_);
  for (auto it = state_.queue.lower_bound({sub, std::max(from, FloorOf(state_, sub))});
       it != state_.queue.end() && it->first == sub && out->size() < max; ++it) {
    out->push_back(it->second);
  }
  return absl::OkStatus();
}

absl::StatusOr<int64_t> InMemoryBrokerStore::CountQueue(uint32_t sub) {
  absl::MutexLock lock(&mu_);
  int64_t n = 0;
  for (auto it = state_.queue.lower_bound({sub, FloorOf(state_, sub)});
       it != state_.queue.end() && it->first == sub; ++it) {
    ++n;
  }
  return n;
}

uint64_t InMemoryBrokerStore::AckFloor(uint32_t sub) {
  absl::MutexLock lock(&mu_);
  return FloorOf(state_, sub);
}

absl::StatusOr<std::optional<StoredEvent>> InMemoryBrokerStore::GetOwedCopy(uint32_t sub,
                                                                            uint64_t sequence) {
  absl::MutexLock lock(&mu_);
  auto it = state_.pending.find({sub, sequence});
  if (it == state_.pending.end() || it->second.event().empty()) return std::nullopt;
  StoredEvent e;
  e.sequence = sequence;
  e.publish_time = absl::FromUnixSeconds(it->second.publish_time().seconds()) +
                   absl::Nanoseconds(it->second.publish_time().nanos());
  e.wire = it->second.event();
  return e;
}

absl::Status InMemoryBrokerStore::LoadPending(
    uint32_t sub, const std::function<void(uint64_t, const storage::PendingRecord&)>& visit) {
  std::vector<std::pair<uint64_t, storage::PendingRecord>> records;
  {
    absl::MutexLock lock(&mu_);
    for (auto it = state_.pending.lower_bound({sub, 0});
         it != state_.pending.end() && it->first.first == sub; ++it) {
      records.emplace_back(it->first.second, it->second);
    }
  }
  for (const auto& [seq, record] : records) visit(seq, record);
  return absl::OkStatus();
}

absl::Status InMemoryBrokerStore::ScanDeadLetters(uint32_t sub, uint64_t from, size_t max,
                                                  std::vector<v1::DeadLetter>* out) {
  absl::MutexLock lock(&mu_);
  for (auto it = state_.dead.lower_bound({sub, from});
       it != state_.dead.end() && it->first.first == sub && out->size() < max; ++it) {
    out->push_back(it->second);
  }
  return absl::OkStatus();
}

absl::StatusOr<int64_t> InMemoryBrokerStore::CountDeadLetters(uint32_t sub) {
  absl::MutexLock lock(&mu_);
  int64_t n = 0;
  for (auto it = state_.dead.lower_bound({sub, 0});
       it != state_.dead.end() && it->first.first == sub; ++it) {
    ++n;
  }
  return n;
}

absl::StatusOr<std::vector<storage::SubscriptionRecord>> InMemoryBrokerStore::LoadSubscriptions() {
  absl::MutexLock lock(&mu_);
  std::vector<storage::SubscriptionRecord> out;
  for (const auto& [name, record] : state_.subscriptions) out.push_back(record);
  return out;
}

absl::StatusOr<uint64_t> InMemoryBrokerStore::LastSequence() {
  absl::MutexLock lock(&mu_);
  return state_.last_sequence;
}

absl::StatusOr<uint32_t> InMemoryBrokerStore::NextSubscriptionId() {
  absl::MutexLock lock(&mu_);
  return state_.next_subscription_id;
}

absl::StatusOr<uint64_t> InMemoryBrokerStore::FirstSequence() {
  absl::MutexLock lock(&mu_);
  return state_.events.empty() ? 0 : state_.events.begin()->first;
}

absl::StatusOr<int64_t> InMemoryBrokerStore::ApproximateEventBytes() {
  absl::MutexLock lock(&mu_);
  return state_.event_bytes;
}

void InMemoryBrokerStore::FailWrites(absl::Status status) {
  absl::MutexLock lock(&mu_);
  fail_writes_ = std::move(status);
}

int64_t InMemoryBrokerStore::writes() const {
  absl::MutexLock lock(&mu_);
  return writes_;
}

size_t InMemoryBrokerStore::StoredQueueEntries(uint32_t sub) const {
  absl::MutexLock lock(&mu_);
  size_t n = 0;
  for (auto it = state_.queue.lower_bound({sub, 0}); it != state_.queue.end() && it->first == sub;
       ++it) {
    ++n;
  }
  return n;
}

}  // namespace pettube::broker
