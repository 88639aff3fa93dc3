// PetTube broker: the durable central event router (see broker.h).
//
// Access (with --auth_server): subscriptions belong to the workload that
// created them; --publish_policy_file binds workloads (by client id or
// identity id) to the event types and source prefixes they may publish and
// to subscriptions they may use besides their own. The file's format is in
// services/broker/access_policy.h; without it any events.publish caller
// publishes anything and transcode workers share the coordinator's
// "subscriptions/transcode-jobs".
#include "absl/flags/flag.h"
#include "libs/auth/credentials/authenticator.h"
#include "libs/client/channel.h"
#include "libs/log/log.h"
#include "libs/server/server.h"
#include "services/broker/access_policy.h"
#include "services/broker/allocator_limits.h"
#include "services/broker/broker.h"
#include "services/broker/broker_service.h"
#include "services/broker/client_id_resolver.h"
#include "services/broker/memory_budget.h"
#include "services/broker/rocksdb_broker_store.h"

ABSL_FLAG(absl::Duration, dedup_window, absl::Hours(24),
          "a second publish of the same source+id within this window is a duplicate");
ABSL_FLAG(int64_t, max_event_bytes, 1 << 20, "largest serialized event accepted");
ABSL_FLAG(int64_t, max_response_bytes, (4 << 20) - (64 << 10),
          "largest Subscribe response or ListDeadLetters page sent (an event bigger than this "
          "goes alone); the default fits a default gRPC client's 4 MiB receive limit");
ABSL_FLAG(bool, sync, true,
          "fsync before acknowledging (turn off only for tests that trade crash safety for speed)");
ABSL_FLAG(int64_t, memory_budget_bytes, pettube::broker::MemoryBudget::kDefaultBytes,
          "memory for what grows with traffic, at least 8 MiB: half for RocksDB's memtables, "
          "a sixth for its block cache (index and filter blocks included), a sixth for the "
          "cache of recent events, a twelfth for the dedup table's in-memory part, a twelfth "
          "for free pages kept for the next memtable (see services/broker/memory_budget.h)");
ABSL_FLAG(int64_t, max_subscription_bytes, 128 << 20,
          "bytes of events one subscription holds in memory (ready, leased, retrying) at most; "
          "past it delivery waits for settlements");
ABSL_FLAG(absl::Duration, retention_max_age, absl::Hours(24 * 7),
          "events older than this may be removed");
ABSL_FLAG(int64_t, retention_max_bytes, 0,
          "log size above which consumed events are removed (0: no limit)");

ABSL_FLAG(std::string, auth_server, "",
          "auth-token-exchange gRPC address; callers then need access tokens with the "
          "events.* scopes");
ABSL_FLAG(std::string, auth_issuer, "pettube-auth", "\"iss\" of accepted access tokens");
ABSL_FLAG(std::string, auth_audience, "pettube", "\"aud\" of accepted access tokens");
ABSL_FLAG(std::string, publish_policy_file, "",
          "JSON binding workloads to the event types/sources they may publish and the "
          "subscriptions they may use (see services/broker/access_policy.h); empty: PetTube's "
          "defaults");
ABSL_FLAG(bool, allow_unauthenticated, false,
          "serve without --auth_server on a non-loopback address (never in production)");

namespace {

// RocksDB's memory on /metrics: how the budget's store parts are used.
void ExportStoreMemory(pettube::broker::RocksDbBrokerStore* store,
                       pettube::metrics::Registry& registry) {
  auto& family = pettube::metrics::BuildGauge()
                     .Name("pettube_broker_store_memory_bytes")
                     .Help("The store's memory by part (block_cache includes the memtables' charge).")
                     .Register(registry);
  auto& memtables = family.Add({{"part", "memtables"}});
  auto& block_cache = family.Add({{"part", "block_cache"}});
  auto& table_readers = family.Add({{"part", "table_readers"}});
  auto& dedup_index = family.Add({{"part", "dedup_index"}});
  auto& heap = pettube::metrics::BuildGauge()
                   .Name("pettube_broker_heap_bytes")
                   .Help("The allocator's memory: in use, and free but kept (tcmalloc only).")
                   .Register(registry);
  auto& in_use = heap.Add({{"state", "in_use"}});
  auto& page_heap_free = heap.Add({{"state", "page_heap_free"}});
  auto& cached_free = heap.Add({{"state", "cached_free"}});
  registry.AddCollectCallback(
      [=, &memtables, &block_cache, &table_readers, &dedup_index, &in_use, &page_heap_free, &cached_free] {
        const auto usage = store->GetMemoryUsage();
        memtables.Set(static_cast<double>(usage.memtables));
        block_cache.Set(static_cast<double>(usage.block_cache));
        table_readers.Set(static_cast<double>(usage.table_readers));
        dedup_index.Set(static_cast<double>(usage.dedup_index));
        const auto heap_stats = pettube::broker::ReadAllocatorStats();
        in_use.Set(static_cast<double>(heap_stats.in_use));
        page_heap_free.Set(static_cast<double>(heap_stats.page_heap_free));
        cached_free.Set(static_cast<double>(heap_stats.cached_free));
      });
}

}  // namespace

int main(int argc, char** argv) {
  const pettube::server::Options opts = pettube::server::ParseFlagsOrExit(argc, argv, "broker");
  const auto budget =
      pettube::broker::MemoryBudget::Divide(absl::GetFlag(FLAGS_memory_budget_bytes));
  if (!budget.ok()) return pettube::server::ExitWith(budget.status());
  pettube::broker::LimitAllocatorThreadCaches(budget->allocator_thread_cache_bytes);
  pettube::broker::RocksDbBrokerStore::Options store_options;
  store_options.dedup_window = absl::GetFlag(FLAGS_dedup_window);
  store_options.sync = absl::GetFlag(FLAGS_sync);
  store_options.write_buffer_bytes = budget->write_buffer_bytes;
  store_options.block_cache_bytes = budget->block_cache_bytes;
  store_options.dedup_index_bytes = budget->dedup_index_bytes;
  store_options.after_background_work = [keep = budget->allocator_free_keep_bytes] {
    pettube::broker::TrimAllocatorFreeMemory(keep);
  };
  auto store = pettube::broker::RocksDbBrokerStore::Open(opts.data_dir, store_options);
  if (!store.ok()) return pettube::server::ExitWith(store.status());
  ExportStoreMemory(store->get(), pettube::server::ProcessRegistry());
  pettube::broker::Broker::Options options;
  options.event_cache_bytes = static_cast<int64_t>(budget->event_cache_bytes);
  options.dedup_window = absl::GetFlag(FLAGS_dedup_window);
  options.max_event_bytes = static_cast<size_t>(absl::GetFlag(FLAGS_max_event_bytes));
  options.sync = absl::GetFlag(FLAGS_sync);
  if (absl::GetFlag(FLAGS_max_response_bytes) < 1024) {
    return pettube::server::ExitWith(
        absl::InvalidArgumentError("max_response_bytes: must be at least 1024"));
  }
  options.max_response_bytes = static_cast<size_t>(absl::GetFlag(FLAGS_max_response_bytes));
  if (absl::GetFlag(FLAGS_max_subscription_bytes) < (1 << 20)) {
    return pettube::server::ExitWith(
        absl::InvalidArgumentError("max_subscription_bytes: must be at least 1 MiB"));
  }
  options.max_subscription_bytes = absl::GetFlag(FLAGS_max_subscription_bytes);
  options.retention_max_age = absl::GetFlag(FLAGS_retention_max_age);
  options.retention_max_bytes = absl::GetFlag(FLAGS_retention_max_bytes);
  pettube::broker::AccessPolicy policy = pettube::broker::AccessPolicy::Defaults();
  if (const std::string file = absl::GetFlag(FLAGS_publish_policy_file); !file.empty()) {
    auto parsed = pettube::broker::AccessPolicy::FromFile(file);
    if (!parsed.ok()) return pettube::server::ExitWith(parsed.status());
    policy = *std::move(parsed);
  }
  options.access_policy = &policy;
  auto broker =
      pettube::broker::Broker::Open(store->get(), options, &pettube::server::ProcessRegistry());
  if (!broker.ok()) return pettube::server::ExitWith(broker.status());
  std::unique_ptr<pettube::auth::Authenticator> authenticator;
  std::unique_ptr<pettube::broker::GrpcClientIdResolver> resolver;
  if (const std::string auth = absl::GetFlag(FLAGS_auth_server); !auth.empty()) {
    auto channel = pettube::client::MakeChannel(auth, pettube::client::ChannelOptionsFromFlags());
    if (!channel.ok()) return pettube::server::ExitWith(channel.status());
    if (policy.NeedsClientIds()) {
      resolver = std::make_unique<pettube::broker::GrpcClientIdResolver>(*channel);
    }
    authenticator = std::make_unique<pettube::auth::Authenticator>(
        pettube::auth::Authenticator::Options{absl::GetFlag(FLAGS_auth_issuer),
                                              absl::GetFlag(FLAGS_auth_audience)},
        pettube::auth::GrpcJwksSource(*channel));
    // Keys now if auth is up; otherwise on the first call.
    if (auto s = authenticator->Prefetch(); !s.ok()) {
      pettube::log::Warning("auth.keys_unavailable", {{"code", s}});
    }
  } else {
    std::string host;
    int port;
    (void)pettube::server::ParseHostPort("listen", opts.listen, &host, &port);
    if (!pettube::server::IsLoopbackHost(host) && !absl::GetFlag(FLAGS_allow_unauthenticated)) {
      return pettube::server::ExitWith(absl::FailedPreconditionError(
          "auth_server: required on a non-loopback address (or --allow_unauthenticated)"));
    }
    pettube::log::Warning("auth.disabled", {{"reason", "no --auth_server; loopback only"}});
  }
  pettube::broker::BrokerService service(**broker, authenticator.get(), resolver.get());
  pettube::server::ServeSpec spec;
  spec.services.push_back(pettube::server::Expose<pettube::broker::v1::Broker>(&service));
  spec.on_drain = [&] { (*broker)->Drain(); };
  return pettube::server::Serve(opts, std::move(spec));
}
