#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "proto/io/cloudevents/v1/cloudevents.pb.h"
#include "proto/pettube/broker/v1/broker.pb.h"
#include "services/broker/broker_storage.pb.h"

namespace pettube::broker {

using io::cloudevents::v1::CloudEvent;

// An event in the log. The CloudEvent stays in protobuf wire format, as it
// is stored and as it is delivered: a delivery copies these bytes into its
// message instead of parsing and re-serializing the event, and every
// subscription shares one copy.
struct StoredEvent {
  uint64_t sequence = 0;
  absl::Time publish_time;
  std::string wire;  // a serialized CloudEvent

  // Parses `wire`; false if the bytes are not a CloudEvent.
  bool Parse(CloudEvent* out) const { return out->ParseFromString(wire); }
};

// The broker's durable state, behind an interface so the storage engine can
// change (RocksDB embedded by default; NATS JetStream is planned for
// deployments that outgrow one node).
//
// Layout (RocksDB column families in RocksDbBrokerStore):
//   events   seq -> publish time + CloudEvent
//   dedup    source + id -> seq + publish time (expired by window)
//   queue    subscription + seq: events a subscription still owes (unacked),
//            those below the subscription's ack floor excepted
//   pending  subscription + seq -> PendingRecord (attempts, last error; a
//            redriven dead letter's event, owed whatever retention does)
//   dead     subscription + seq -> DeadLetter
//   meta     subscriptions, ack floors, last sequence, next subscription id
//
// Thread-safety: reads are safe from any thread; one writer at a time (the
// broker's committer thread) builds and writes batches.
class BrokerStore {
 public:
  // Mutations applied atomically by Write().
  class Batch {
   public:
    virtual ~Batch() = default;
    virtual void PutEvent(const StoredEvent& event) = 0;
    virtual void DeleteEventsBefore(uint64_t sequence) = 0;
    virtual void PutDedup(absl::string_view source, absl::string_view id, uint64_t sequence,
                          absl::Time publish_time) = 0;
    virtual void Enqueue(uint32_t subscription, uint64_t sequence) = 0;
    virtual void Dequeue(uint32_t subscription, uint64_t sequence) = 0;
    // Removes every queue entry in [from, to) (a range deletion: for rare
    // bulk changes, not per ack).
    virtual void DequeueRange(uint32_t subscription, uint64_t from, uint64_t to) = 0;
    // Every queue entry of the subscription below `floor` is settled: reads
    // skip them and compaction drops them. One record per group of acks
    // instead of a deletion per acked entry (acks mostly come in order);
    // entries acked above the floor are dequeued one by one. May lower the
    // floor (a redrive re-queues old entries in the same batch).
    virtual void SetAckFloor(uint32_t subscription, uint64_t floor) = 0;
    virtual void PutPending(uint32_t subscription, uint64_t sequence,
                            const storage::PendingRecord& record) = 0;
    virtual void DeletePending(uint32_t subscription, uint64_t sequence) = 0;
    virtual void PutDeadLetter(uint32_t subscription, const v1::DeadLetter& dead_letter) = 0;
    virtual void DeleteDeadLetter(uint32_t subscription, uint64_t sequence) = 0;
    virtual void PutSubscription(const storage::SubscriptionRecord& record) = 0;
    // Deletes the record and every queue, pending and dead-letter entry.
    virtual void DeleteSubscription(const std::string& name, uint32_t internal_id) = 0;
    // Drops every queue and pending entry of a subscription, and its ack
    // floor (seek).
    virtual void ClearQueue(uint32_t internal_id) = 0;
    virtual void SetLastSequence(uint64_t sequence) = 0;
    virtual void SetNextSubscriptionId(uint32_t id) = 0;
    virtual size_t Count() const = 0;
  };

  virtual ~BrokerStore() = default;

  virtual std::unique_ptr<Batch> NewBatch() = 0;

  // Applies the batch atomically. With `sync`, returns only once the batch
  // is on stable storage (fsync of the write-ahead log), and readers see it
  // only then. Without, readers may see it before it is durable.
  virtual absl::Status Write(Batch& batch, bool sync) = 0;

  // Makes every write that returned before this call durable (fsync of the
  // write-ahead log). May run on another thread while the next Write runs:
  // a writer can go on writing while earlier writes are synced, and one
  // sync covers several writes. After a failed Sync, the writes it should
  // have covered may still be visible to readers and may or may not be on
  // disk, and a later Sync cannot tell: the caller must not treat them as
  // durable.
  virtual absl::Status Sync() = 0;

  // Reads.
  virtual absl::StatusOr<std::optional<StoredEvent>> GetEvent(uint64_t sequence) = 0;
  // Several events in one batched read (ascending sequences read fastest);
  // `out` gets one entry per sequence, nullopt where the event is gone.
  virtual absl::Status GetEvents(const std::vector<uint64_t>& sequences,
                                 std::vector<std::optional<StoredEvent>>* out) = 0;
  // The sequence stored for source+id, if published at or after `not_before`.
  virtual absl::StatusOr<std::optional<uint64_t>> LookupDedup(absl::string_view source,
                                                              absl::string_view id,
                                                              absl::Time not_before) = 0;
  // LookupDedup for several source+id pairs in one batched read (a store
  // may answer them together); `out` gets one entry per pair.
  virtual absl::Status LookupDedups(
      const std::vector<std::pair<absl::string_view, absl::string_view>>& source_ids,
      absl::Time not_before, std::vector<std::optional<uint64_t>>* out) {
    out->clear();
    out->reserve(source_ids.size());
    for (const auto& [source, id] : source_ids) {
      auto found = LookupDedup(source, id, not_before);
      if (!found.ok()) return found.status();
      out->push_back(*found);
    }
    return absl::OkStatus();
  }
  // Calls `visit` for events with sequence >= `from`, in order, until it
  // returns false.
  virtual absl::Status ScanEvents(uint64_t from,
                                  const std::function<bool(const StoredEvent&)>& visit) = 0;
  // Up to `max` queued sequences of a subscription that are >= `from` (and
  // at or above its ack floor).
  virtual absl::Status ScanQueue(uint32_t subscription, uint64_t from, size_t max,
                                 std::vector<uint64_t>* out) = 0;
  // Queued entries at or above the ack floor.
  virtual absl::StatusOr<int64_t> CountQueue(uint32_t subscription) = 0;
  // The subscription's ack floor (0 if none was written).
  virtual uint64_t AckFloor(uint32_t subscription) = 0;
  // The event copy a redrive left in the subscription's pending record for
  // `sequence` (see PendingRecord.event), if any.
  virtual absl::StatusOr<std::optional<StoredEvent>> GetOwedCopy(uint32_t subscription,
                                                                 uint64_t sequence) = 0;
  virtual absl::Status LoadPending(
      uint32_t subscription,
      const std::function<void(uint64_t, const storage::PendingRecord&)>& visit) = 0;
  // Dead letters with sequence >= `from`, oldest first, up to `max`.
  virtual absl::Status ScanDeadLetters(uint32_t subscription, uint64_t from, size_t max,
                                       std::vector<v1::DeadLetter>* out) = 0;
  virtual absl::StatusOr<int64_t> CountDeadLetters(uint32_t subscription) = 0;
  virtual absl::StatusOr<std::vector<storage::SubscriptionRecord>> LoadSubscriptions() = 0;
  virtual absl::StatusOr<uint64_t> LastSequence() = 0;
  virtual absl::StatusOr<uint32_t> NextSubscriptionId() = 0;
  // First retained sequence (0 if none).
  virtual absl::StatusOr<uint64_t> FirstSequence() = 0;
  // Approximate bytes the retained events take on disk and in memory.
  virtual absl::StatusOr<int64_t> ApproximateEventBytes() = 0;
};

}  // namespace pettube::broker
