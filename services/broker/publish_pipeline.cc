#include "services/broker/publish_pipeline.h"

#include <optional>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "libs/time/proto_time.h"
#include "services/broker/dispatcher.h"
#include "services/broker/event_validation.h"
#include "services/broker/retention.h"

namespace pettube::broker {

using time::ToProto;

void PublishPipeline::Publish(std::vector<CloudEvent> events, PublishDone done,
                              const Access& access) {
  struct State {
    std::vector<CloudEvent> events;
    std::vector<v1::PublishResult> results;
    std::vector<bool> valid;
    std::vector<std::shared_ptr<const StoredEvent>> stored;  // by index; null if not stored
    std::vector<std::vector<uint32_t>> routes;
    std::vector<std::string> dedup_keys;
    // Duplicates of events prepared in the same (not yet written) group:
    // they share that group's fate.
    std::vector<bool> duplicate_of_unwritten;
  };
  auto state = std::make_shared<State>();
  state->results.resize(events.size());
  state->valid.resize(events.size());
  bool any_valid = false;
  for (size_t i = 0; i < events.size(); ++i) {
    absl::Status s = ValidateEvent(events[i], s_.options.max_event_bytes);
    if (s.ok() && s_.options.access_policy != nullptr) {
      s = s_.options.access_policy->CheckPublish(access, events[i]);
    }
    state->valid[i] = s.ok();
    any_valid |= s.ok();
    if (!s.ok()) {
      *state->results[i].mutable_status() = ToProtoStatus(s);
      s_.probe.Rejected();
    }
  }
  {
    absl::MutexLock lock(&s_.mu);
    if (s_.draining) {
      for (auto& r : state->results) {
        if (!r.has_status())
          *r.mutable_status() = ToProtoStatus(
              absl::UnavailableError("broker is shutting down; publish to another instance"));
      }
      any_valid = false;
    }
  }
  if (!any_valid) {
    done(std::move(state->results));
    return;
  }
  size_t bytes = 0;
  for (const CloudEvent& e : events) bytes += e.ByteSizeLong();
  state->events = std::move(events);
  Committer::Op op;
  op.bytes = bytes;
  op.prepare = [this, state](BrokerStore::Batch& batch) {
    const absl::Time now = s_.clock->Now();
    const size_t n = state->events.size();
    state->stored.resize(n);
    state->routes.resize(n);
    state->duplicate_of_unwritten.resize(n);
    for (size_t i = 0; i < n; ++i) {
      if (!state->valid[i] || state->results[i].has_status()) continue;
      CloudEvent& e = state->events[i];
      std::string key = absl::StrCat(e.source(), absl::string_view("\0", 1), e.id());
      std::optional<uint64_t> existing;
      if (auto it = unwritten_dedup_.find(key); it != unwritten_dedup_.end()) {
        existing = it->second;
        state->duplicate_of_unwritten[i] = true;
      } else {
        auto found = s_.store->LookupDedup(e.source(), e.id(), now - s_.options.dedup_window);
        if (!found.ok()) {
          *state->results[i].mutable_status() = ToProtoStatus(found.status());
          continue;
        }
        existing = *found;
      }
      if (existing.has_value()) {
        state->results[i].set_duplicate(true);
        state->results[i].set_sequence(*existing);
        continue;
      }
      const uint64_t seq = s_.last_seq.load() + 1;
      s_.last_seq.store(seq);
      auto stored = std::make_shared<StoredEvent>();
      stored->sequence = seq;
      stored->publish_time = now;
      stored->wire = e.SerializeAsString();
      batch.PutEvent(*stored);
      batch.PutDedup(e.source(), e.id(), seq, now);
      unwritten_dedup_[key] = seq;
      state->dedup_keys.push_back(std::move(key));
      state->results[i].set_sequence(seq);
      state->stored[i] = std::move(stored);
    }
    absl::MutexLock lock(&s_.mu);
    for (size_t i = 0; i < n; ++i) {
      if (state->stored[i] == nullptr) continue;
      s_.index.Match(state->events[i], &state->routes[i]);
      for (uint32_t sub : state->routes[i]) batch.Enqueue(sub, state->stored[i]->sequence);
    }
    batch.SetLastSequence(s_.last_seq.load());
  };
  op.done = [this, state, done = std::move(done)](const absl::Status& status) {
    for (const std::string& key : state->dedup_keys) unwritten_dedup_.erase(key);
    for (size_t i = 0; i < state->results.size(); ++i) {
      v1::PublishResult& r = state->results[i];
      if (r.has_status()) continue;
      if (!status.ok() && (state->stored[i] != nullptr || state->duplicate_of_unwritten[i])) {
        // Everything in a failed group fails, duplicates of its events too:
        // the sequence they would name was never written.
        r.set_duplicate(false);
        *r.mutable_status() = ToProtoStatus(
            absl::UnavailableError(absl::StrCat("event not stored, retry: ", status.message())));
        r.set_sequence(0);
        continue;
      }
      r.mutable_status();  // code 0: OK
      if (r.duplicate()) {
        s_.probe.Duplicate();
      } else {
        s_.probe.Published();
      }
    }
    if (status.ok()) AfterPublish(state->stored, state->routes);
    done(std::move(state->results));
  };
  s_.committer->Submit(std::move(op));
}

void PublishPipeline::AfterPublish(const std::vector<std::shared_ptr<const StoredEvent>>& stored,
                                   const std::vector<std::vector<uint32_t>>& routes) {
  absl::MutexLock lock(&s_.mu);
  absl::flat_hash_set<uint32_t> touched;
  for (size_t i = 0; i < stored.size(); ++i) {
    if (stored[i] == nullptr) continue;
    s_.recent.Insert(stored[i]);
    for (uint32_t id : routes[i]) {
      auto it = s_.subs.find(id);
      if (it == s_.subs.end()) continue;
      SubState& sub = *it->second;
      ++sub.backlog;
      ++sub.routed;
      touched.insert(id);
      const uint64_t seq = stored[i]->sequence;
      // A refill that already read this entry from the store moved the
      // cursor past it: never queue it twice.
      if (seq < sub.load_cursor) continue;
      if (sub.caught_up && !sub.consumers.empty() &&
          sub.ready.size() < Dispatcher::kMaxReadyInMemory &&
          sub.held_bytes < s_.options.max_subscription_bytes) {
        sub.ready.push_back({seq, HeldEvent(stored[i], &sub.held_bytes)});
        sub.outstanding.insert(seq);
        sub.load_cursor = seq + 1;
      } else {
        // Nobody is reading, or readers are behind: leave it on disk rather
        // than in memory; a refill reads it when there is room.
        sub.caught_up = false;
      }
    }
  }
  for (uint32_t id : touched) s_.parts.dispatcher->PumpLocked(*s_.subs[id]);
  s_.parts.retention->AfterPublishLocked(stored);
}

absl::StatusOr<v1::StreamInfo> PublishPipeline::GetStreamInfo() {
  v1::StreamInfo info;
  auto first = s_.store->FirstSequence();
  if (!first.ok()) return first.status();
  const uint64_t last = s_.last_seq.load();
  info.set_first_sequence(*first);
  info.set_last_sequence(last);
  info.set_event_count(*first == 0 ? 0 : static_cast<int64_t>(last - *first + 1));
  *info.mutable_max_age() = ToProto(s_.options.retention_max_age);
  info.set_max_bytes(s_.options.retention_max_bytes);
  *info.mutable_dedup_window() = ToProto(s_.options.dedup_window);
  return info;
}

}  // namespace pettube::broker
