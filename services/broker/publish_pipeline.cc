#include "services/broker/publish_pipeline.h"

#include <algorithm>
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
    // Shared with later ops that answer duplicates of these events before
    // they are written.
    std::shared_ptr<Origin> origin = std::make_shared<Origin>();
    // For duplicates of events prepared but not yet written (in this op or
    // an earlier one): that op, whose fate they share.
    std::vector<std::shared_ptr<Origin>> duplicate_of_unwritten;
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
    auto open = [&](size_t i) { return state->valid[i] && !state->results[i].has_status(); };
    std::vector<std::string> keys(n);
    std::vector<std::optional<uint64_t>> existing(n);
    // Copies prepared and not yet written are found in the map; any other
    // earlier copy is in the store (ops leave the map only once written),
    // where the rest are looked up in one batched read.
    std::vector<size_t> to_look_up;
    {
      absl::MutexLock lock(&dedup_mu_);
      for (size_t i = 0; i < n; ++i) {
        if (!open(i)) continue;
        const CloudEvent& e = state->events[i];
        keys[i] = absl::StrCat(e.source(), absl::string_view("\0", 1), e.id());
        if (auto it = unwritten_dedup_.find(keys[i]); it != unwritten_dedup_.end()) {
          existing[i] = it->second.sequence;
          state->duplicate_of_unwritten[i] = it->second.origin;
        } else {
          to_look_up.push_back(i);
        }
      }
    }
    if (!to_look_up.empty()) {
      std::vector<std::pair<absl::string_view, absl::string_view>> source_ids;
      source_ids.reserve(to_look_up.size());
      for (size_t i : to_look_up) {
        source_ids.emplace_back(state->events[i].source(), state->events[i].id());
      }
      std::vector<std::optional<uint64_t>> found;
      const absl::Status s =
          s_.store->LookupDedups(source_ids, now - s_.options.dedup_window, &found);
      for (size_t k = 0; k < to_look_up.size(); ++k) {
        if (s.ok()) {
          existing[to_look_up[k]] = found[k];
        } else {
          *state->results[to_look_up[k]].mutable_status() = ToProtoStatus(s);
        }
      }
    }
    // Sequences for the new events; a second copy within this op is a
    // duplicate of the first, sharing this op's fate.
    std::vector<uint64_t> assigned(n, 0);
    {
      absl::MutexLock lock(&dedup_mu_);
      for (size_t i = 0; i < n; ++i) {
        if (!open(i)) continue;
        if (!existing[i].has_value()) {
          const uint64_t seq = s_.last_seq.load() + 1;
          auto [it, inserted] =
              unwritten_dedup_.try_emplace(keys[i], Unwritten{seq, state->origin});
          if (inserted) {
            s_.last_seq.store(seq);
            assigned[i] = seq;
            state->dedup_keys.push_back(std::move(keys[i]));
            continue;
          }
          existing[i] = it->second.sequence;
          state->duplicate_of_unwritten[i] = it->second.origin;
        }
        state->results[i].set_duplicate(true);
        state->results[i].set_sequence(*existing[i]);
      }
    }
    for (size_t i = 0; i < n; ++i) {
      if (assigned[i] == 0) continue;
      CloudEvent& e = state->events[i];
      auto stored = std::make_shared<StoredEvent>();
      stored->sequence = assigned[i];
      stored->publish_time = now;
      stored->wire = e.SerializeAsString();
      batch.PutEvent(*stored);
      batch.PutDedup(e.source(), e.id(), assigned[i], now);
      state->results[i].set_sequence(assigned[i]);
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
  // Its prepare reads only the dedup table (the map above for what is not
  // durable yet), the sequence and the filter index: it may be prepared
  // while earlier groups are being written and synced. Its events reach
  // subscriptions only from `done`, after the sync.
  op.overlaps = true;
  op.done = [this, state, done = std::move(done)](const absl::Status& status) {
    // The failed ops' duplicates fail too, in this op or a later one: the
    // sequence they would name was never written. Ops finish in order, so
    // an origin's fate is known before its duplicates' ops finish.
    std::vector<bool> origin_failed(state->results.size(), false);
    {
      absl::MutexLock lock(&dedup_mu_);
      state->origin->failed = !status.ok();
      for (const std::string& key : state->dedup_keys) unwritten_dedup_.erase(key);
      for (size_t i = 0; i < state->duplicate_of_unwritten.size(); ++i) {
        const auto& origin = state->duplicate_of_unwritten[i];
        origin_failed[i] = origin != nullptr && origin->failed;
      }
    }
    for (size_t i = 0; i < state->results.size(); ++i) {
      v1::PublishResult& r = state->results[i];
      if (r.has_status()) continue;
      if (!status.ok() || origin_failed[i]) {
        // Everything in a failed group fails, duplicates of its events too:
        // the sequence they would name was never written. So do duplicates
        // found in the store: after a failed sync the store still shows
        // events that are not durable.
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
    if (status.ok()) {
      // Durable now: refills may read these events from the store.
      uint64_t top = 0;
      for (const auto& e : state->stored) {
        if (e != nullptr) top = std::max(top, e->sequence);
      }
      if (top > s_.durable_seq.load()) s_.durable_seq.store(top);
      AfterPublish(state->stored, state->routes);
    }
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
    // Cached only when a subscription it is routed to has a consumer
    // attached: nobody else reads it from memory soon, and a backlog
    // published with no reader (the memory row of the benchmark) would
    // otherwise keep the cache's share full of events read much later, from
    // the store, in order.
    bool read_soon = false;
    for (uint32_t id : routes[i]) {
      auto it = s_.subs.find(id);
      if (it == s_.subs.end()) continue;
      SubState& sub = *it->second;
      read_soon |= !sub.consumers.empty();
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
    if (read_soon) s_.recent.Insert(stored[i]);
  }
  for (uint32_t id : touched) s_.parts.dispatcher->PumpLocked(*s_.subs[id]);
  s_.parts.retention->AfterPublishLocked(stored);
}

absl::StatusOr<v1::StreamInfo> PublishPipeline::GetStreamInfo() {
  v1::StreamInfo info;
  // The durable log: the store may also show events written, not synced.
  const uint64_t last = s_.durable_seq.load();
  auto first = s_.store->FirstSequence();
  if (!first.ok()) return first.status();
  if (*first > last) *first = 0;  // only unsynced events
  info.set_first_sequence(*first);
  info.set_last_sequence(last);
  info.set_event_count(*first == 0 ? 0 : static_cast<int64_t>(last - *first + 1));
  *info.mutable_max_age() = ToProto(s_.options.retention_max_age);
  info.set_max_bytes(s_.options.retention_max_bytes);
  *info.mutable_dedup_window() = ToProto(s_.options.dedup_window);
  return info;
}

}  // namespace pettube::broker
