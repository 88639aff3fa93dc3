// PetTube media-catalog: media records projected from the broker's events
// into RocksDB, served with signed playback URLs and live watch. See
// services/media-catalog/README.md for flags, backup, restore and rebuild.
#include <unistd.h>

#include <algorithm>
#include <memory>
#include <optional>
#include <string>

#include "absl/flags/declare.h"
#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "libs/broker_client/publisher.h"
#include "libs/broker_client/subscriber.h"
#include "libs/log/log.h"
#include "libs/server/server.h"
#include "libs/signed_url/url_signer.h"
#include "libs/time/proto_time.h"
#include "libs/workload/workload.h"
#include "services/media-catalog/catalog.h"
#include "services/media-catalog/catalog_service.h"
#include "services/media-catalog/event_subscription.h"
#include "services/media-catalog/media_view.h"
#include "services/media-catalog/projection_probe.h"
#include "services/media-catalog/rendered_cache_warmup.h"
#include "services/media-catalog/rendered_media.h"
#include "services/media-catalog/rocksdb_media_store.h"

ABSL_DECLARE_FLAG(std::string, auth_server);

ABSL_FLAG(std::string, objects_url, "",
          "base URL of the upload service's object listener for signed URLs, e.g. "
          "http://127.0.0.1:8081");
ABSL_FLAG(std::string, url_signing_keys_file, "",
          "HMAC keys shared with the object server (\"<key_id> <base64 secret>\" lines; the "
          "first signs); without it responses carry no URLs");
ABSL_FLAG(absl::Duration, signed_url_ttl, absl::Hours(1), "lifetime of each signed URL");
ABSL_FLAG(std::string, subscription, "subscriptions/media-catalog",
          "the durable broker subscription the projection consumes (created at start)");
ABSL_FLAG(int, max_delivery_attempts, 5,
          "deliveries before an event is dead-lettered (used when creating the subscription)");
ABSL_FLAG(int, handler_concurrency, 8, "events projected at once");
ABSL_FLAG(bool, rebuild, false,
          "rebuild into an empty --data_dir: seek the subscription to its earliest retained event "
          "before consuming (refused when the store holds records)");
ABSL_FLAG(std::string, replay_since, "",
          "after restoring a backup: seek the subscription to this RFC 3339 time (the backup's "
          "create_time, minus a margin) so events acked after the backup are applied again");
ABSL_FLAG(std::string, backup_dir, "",
          "where CreateBackup writes checkpoints (default: <data_dir>/backups)");
ABSL_FLAG(bool, sync, true, "fsync each projected event before acking it");
ABSL_FLAG(int, block_cache_mb, 128, "RocksDB block cache size");
ABSL_FLAG(int, row_cache_mb, 0,
          "RocksDB row cache: records read recently are answered from memory without a table "
          "lookup (0: none; about 1.4 KB per record)");
ABSL_FLAG(int, record_cache_mb, 0,
          "the catalog's own cache of serialized records, consulted before RocksDB and kept "
          "exact by every write; cheaper per hit than the row cache (0: none; about 1.2 KB per "
          "record)");
ABSL_FLAG(int, rendered_cache_mb, 0,
          "GetMedia's records rendered once as response bytes, stamped with fresh URLs on each "
          "read and kept exact by every write; a hit skips parsing and rendering the record "
          "(0: none; about 2.4 KB per record)");
ABSL_FLAG(bool, warm_row_cache, false,
          "before reporting ready, read every record once into the row cache, the record cache "
          "and the rendered cache (needs one of --row_cache_mb, --record_cache_mb, "
          "--rendered_cache_mb; a restarted node then serves its first reads from memory)");
ABSL_FLAG(int, read_threads, 2,
          "threads that run GetMedia and ListMedia off gRPC's polling threads when they need the "
          "disk (a GetMedia whose record is in memory is answered at once) (0 to 64; 0: every "
          "read on gRPC's threads)");
ABSL_FLAG(int64_t, max_queued_reads, 4096,
          "GetMedia and ListMedia calls that may wait for a read thread; beyond, calls get "
          "RESOURCE_EXHAUSTED (0: no bound)");
ABSL_FLAG(absl::Duration, broker_wait, absl::Seconds(30),
          "how long start-up waits for the broker to create or seek the subscription");

int main(int argc, char** argv) {
  using namespace pettube;  // NOLINT: main only wires the parts together.
  const server::Options opts = server::ParseFlagsOrExit(argc, argv, "media-catalog");
  catalog::RocksDbMediaStore::Options store_options;
  store_options.sync = absl::GetFlag(FLAGS_sync);
  store_options.block_cache_bytes =
      static_cast<size_t>(std::max(1, absl::GetFlag(FLAGS_block_cache_mb))) << 20;
  if (absl::GetFlag(FLAGS_row_cache_mb) < 0) {
    return server::ExitWith(absl::InvalidArgumentError("row_cache_mb: must be 0 or more"));
  }
  store_options.row_cache_bytes = static_cast<size_t>(absl::GetFlag(FLAGS_row_cache_mb)) << 20;
  if (absl::GetFlag(FLAGS_record_cache_mb) < 0) {
    return server::ExitWith(absl::InvalidArgumentError("record_cache_mb: must be 0 or more"));
  }
  store_options.record_cache_bytes = static_cast<size_t>(absl::GetFlag(FLAGS_record_cache_mb))
                                     << 20;
  if (absl::GetFlag(FLAGS_rendered_cache_mb) < 0) {
    return server::ExitWith(absl::InvalidArgumentError("rendered_cache_mb: must be 0 or more"));
  }
  std::unique_ptr<catalog::RenderedCache> rendered;
  if (absl::GetFlag(FLAGS_rendered_cache_mb) > 0) {
    rendered = std::make_unique<catalog::RenderedCache>(
        static_cast<size_t>(absl::GetFlag(FLAGS_rendered_cache_mb)) << 20);
    store_options.on_record_written = [cache = rendered.get()](absl::string_view id) {
      cache->Erase(id);
    };
  }
  const bool store_caches =
      store_options.row_cache_bytes > 0 || store_options.record_cache_bytes > 0;
  if (absl::GetFlag(FLAGS_warm_row_cache) && !store_caches && rendered == nullptr) {
    return server::ExitWith(absl::InvalidArgumentError(
        "warm_row_cache: needs a row cache, a record cache or a rendered cache (--row_cache_mb, "
        "--record_cache_mb, --rendered_cache_mb)"));
  }
  auto store = catalog::RocksDbMediaStore::Open(opts.data_dir + "/db", store_options);
  if (!store.ok()) return server::ExitWith(store.status());
  // With a rendered cache, its warm-up below reads every record through
  // the store, which fills the store's caches on the way: one pass.
  if (absl::GetFlag(FLAGS_warm_row_cache) && store_caches && rendered == nullptr) {
    const absl::Time start = absl::Now();
    auto warmed = (*store)->WarmCaches();
    if (!warmed.ok()) return server::ExitWith(warmed.status());
    log::Info("catalog.row_cache_warm",
              {{"records", *warmed}, {"seconds", absl::ToDoubleSeconds(absl::Now() - start)}});
  }

  std::shared_ptr<signed_url::UrlSigner> signer;
  if (const std::string path = absl::GetFlag(FLAGS_url_signing_keys_file); !path.empty()) {
    auto keys = signed_url::KeyRing::FromFile("url_signing_keys_file", path);
    if (!keys.ok()) return server::ExitWith(keys.status());
    if (absl::GetFlag(FLAGS_objects_url).empty()) {
      return server::ExitWith(
          absl::InvalidArgumentError("objects_url: required with --url_signing_keys_file"));
    }
    signer = std::make_shared<signed_url::UrlSigner>(*std::move(keys));
  }

  // Workload credentials: without --auth_server the catalog serves health
  // and metrics only (every API call is UNAUTHENTICATED, nothing projected).
  std::optional<workload::Workload> work;
  if (!absl::GetFlag(FLAGS_auth_server).empty()) {
    auto w = workload::FromFlags({"events.subscribe", "events.publish"});
    if (!w.ok()) return server::ExitWith(w.status());
    work = *std::move(w);
    if (auto s = work->authenticator->Prefetch(); !s.ok()) {
      log::Warning("auth.keys_unavailable", {{"code", s}});
    }
  } else {
    log::Warning("catalog.no_auth", {{"reason", "no --auth_server: API calls are refused"}});
  }
  const bool projecting = work.has_value() && work->broker_channel != nullptr;
  if (work.has_value() && !projecting) {
    log::Warning("catalog.no_broker", {{"reason", "no --broker_server: nothing is projected"}});
  }

  std::unique_ptr<broker_client::Publisher> publisher;
  if (projecting) {
    broker_client::Publisher::Options po;
    po.configure_context = work->ConfigureContext();
    po.max_backoff = absl::Seconds(2);
    publisher = std::make_unique<broker_client::Publisher>(work->broker_channel, po);
  }
  catalog::ChangeFeed feed;
  auto core = catalog::Catalog::Create(
      store->get(), &feed,
      [&publisher](io::cloudevents::v1::CloudEvent event, catalog::Catalog::DoneFn done) {
        if (publisher == nullptr) {
          return done(absl::UnavailableError("media-catalog runs without --broker_server"));
        }
        publisher->PublishAsync(
            std::move(event),
            [done = std::move(done)](absl::StatusOr<broker_client::PublishResult> r) {
              done(r.status());
            });
      },
      {});
  if (!core.ok()) return server::ExitWith(core.status());
  // Update events a stop left unacknowledged go out again (the broker
  // drops any it already has).
  if (projecting) {
    if (auto s = (*core)->PublishOutbox(); !s.ok()) {
      log::Warning("catalog.outbox_unreadable", {{"code", s}});
    }
  }

  const std::string subscription = absl::GetFlag(FLAGS_subscription);
  catalog::ProjectionProbe probe(server::ProcessRegistry());
  std::unique_ptr<broker_client::Subscriber> subscriber;
  if (projecting) {
    const absl::Duration wait = absl::GetFlag(FLAGS_broker_wait);
    if (auto s = catalog::EnsureSubscription(
            work->broker_channel, work->ConfigureContext(), subscription,
            catalog::CatalogSubscription(absl::GetFlag(FLAGS_max_delivery_attempts)), wait);
        !s.ok()) {
      return server::ExitWith(s);
    }
    if (absl::GetFlag(FLAGS_rebuild)) {
      auto empty = (*store)->IsEmpty();
      if (!empty.ok()) return server::ExitWith(empty.status());
      if (!*empty) {
        return server::ExitWith(absl::FailedPreconditionError(
            "rebuild: --data_dir already holds records; rebuild needs an empty one"));
      }
      broker::v1::StartPosition earliest;
      earliest.mutable_earliest();
      if (auto s = catalog::Seek(work->broker_channel, work->ConfigureContext(), subscription,
                                 earliest, wait);
          !s.ok()) {
        return server::ExitWith(s);
      }
      log::Info("catalog.rebuild", {{"subscription", subscription}});
    } else if (const std::string since = absl::GetFlag(FLAGS_replay_since); !since.empty()) {
      absl::Time t;
      std::string error;
      if (!absl::ParseTime(absl::RFC3339_full, since, &t, &error)) {
        return server::ExitWith(absl::InvalidArgumentError(
            absl::StrCat("replay_since: not an RFC 3339 time (", error, "): \"", since, "\"")));
      }
      broker::v1::StartPosition position;
      *position.mutable_time() = time::ToProto(t);
      if (auto s = catalog::Seek(work->broker_channel, work->ConfigureContext(), subscription,
                                 position, wait);
          !s.ok()) {
        return server::ExitWith(s);
      }
      log::Info("catalog.replay", {{"subscription", subscription}, {"since", since}});
    }
    broker_client::Subscriber::Options so;
    so.subscription = subscription;
    so.consumer = absl::StrCat("media-catalog-", getpid());
    so.max_in_flight = 64;
    so.handler_concurrency = absl::GetFlag(FLAGS_handler_concurrency);
    so.configure_context = work->ConfigureContext();
    so.on_stopped = [](const absl::Status& s) {
      log::Error("catalog.subscriber_stopped", {{"code", s}});
    };
    subscriber = std::make_unique<broker_client::Subscriber>(work->broker_channel, so);
    if (auto s = subscriber->Start([&](const broker_client::Delivery& d) {
          return probe.Record((*core)->Apply(d.event()));
        });
        !s.ok()) {
      return server::ExitWith(s);
    }
  }

  catalog::MediaView::Options view_options;
  view_options.objects_url = absl::GetFlag(FLAGS_objects_url);
  view_options.url_ttl = absl::GetFlag(FLAGS_signed_url_ttl);
  catalog::MediaView view(signer, view_options);
  if (absl::GetFlag(FLAGS_warm_row_cache) && rendered != nullptr) {
    const absl::Time start = absl::Now();
    auto warmed = catalog::WarmRenderedCache(**store, view, *rendered);
    if (!warmed.ok()) return server::ExitWith(warmed.status());
    log::Info("catalog.rendered_cache_warm",
              {{"records", *warmed}, {"seconds", absl::ToDoubleSeconds(absl::Now() - start)}});
  }
  std::string backup_dir = absl::GetFlag(FLAGS_backup_dir);
  if (backup_dir.empty()) backup_dir = opts.data_dir + "/backups";
  catalog::CatalogService::Options service_options;
  service_options.backup_dir = backup_dir;
  service_options.read_threads = absl::GetFlag(FLAGS_read_threads);
  if (service_options.read_threads < 0 || service_options.read_threads > 64) {
    return server::ExitWith(absl::InvalidArgumentError(
        absl::StrCat("read_threads: must be 0 to 64, got ", service_options.read_threads)));
  }
  const int64_t max_queued_reads = absl::GetFlag(FLAGS_max_queued_reads);
  if (max_queued_reads < 0 || max_queued_reads > (int64_t{1} << 24)) {
    return server::ExitWith(absl::InvalidArgumentError(
        absl::StrCat("max_queued_reads: must be 0 to 16777216, got ", max_queued_reads)));
  }
  service_options.max_queued_reads = static_cast<size_t>(max_queued_reads);
  service_options.rendered = rendered.get();
  catalog::CatalogService service(
      core->get(), &view, work.has_value() ? work->authenticator.get() : nullptr, service_options);
  server::ServeSpec spec;
  spec.services.push_back(server::Expose<catalog::v1::MediaCatalog>(&service));
  spec.on_drain = [&] {
    service.Drain();
    if (subscriber != nullptr) subscriber->Shutdown(opts.drain_timeout);
  };
  const int code = server::Serve(opts, std::move(spec));
  if (publisher != nullptr) publisher->Shutdown(absl::Seconds(2));
  return code;
}
