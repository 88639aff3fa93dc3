// PetTube upload: resumable, verified uploads into PetTube's object store
// (originals from people, renditions from transcode workers), the
// pettube.media.uploaded event through an outbox, deletion of a media
// item's objects on pettube.media.deleted, and signed, ranged HTTP
// downloads (see uploads.h, object_server.h).
#include <grpcpp/grpcpp.h>

#include <memory>

#include "absl/flags/flag.h"
#include "libs/broker_client/durable_consumer.h"
#include "libs/broker_client/event_builder.h"
#include "libs/broker_client/publisher.h"
#include "libs/http/http_server.h"
#include "libs/log/log.h"
#include "libs/server/server.h"
#include "libs/signed_url/url_signer.h"
#include "libs/workload/workload.h"
#include "proto/pettube/events/v1/events.pb.h"
#include "services/upload/fs_blob_store.h"
#include "services/upload/object_server.h"
#include "services/upload/outbox_publisher.h"
#include "services/upload/rocksdb_upload_store.h"
#include "services/upload/upload_probe.h"
#include "services/upload/upload_service.h"
#include "services/upload/uploads.h"

ABSL_FLAG(std::string, objects_listen, "127.0.0.1:0",
          "HTTP listen address of the object server (signed URLs, ranged GETs)");
ABSL_FLAG(int, objects_threads, 32, "object server worker threads (downloads at once)");
ABSL_FLAG(std::string, url_signing_keys_file, "",
          "signed-URL keys, lines \"KEY_ID BASE64_SECRET\", the first signs (shared with "
          "media-catalog); without it /o/ URLs are refused");
ABSL_FLAG(int64_t, max_object_bytes, int64_t{64} << 30, "largest object accepted");
ABSL_FLAG(int64_t, quota_bytes, int64_t{100} << 30, "bytes of originals each person may hold");
ABSL_FLAG(int64_t, checkpoint_bytes, int64_t{8} << 20,
          "a Write stream syncs and records its offset at least this often: what a crash can "
          "cost a client in re-sent bytes");
ABSL_FLAG(absl::Duration, upload_ttl, absl::Hours(24),
          "an unfinished upload not written to for this long is removed");

namespace {

// What the deletion subscription receives.
pettube::broker::v1::Subscription DeletedSubscription() {
  pettube::broker::v1::Subscription s;
  auto* exact = s.mutable_filter()->mutable_exact();
  exact->set_attribute("type");
  exact->set_value("pettube.media.deleted");
  s.set_max_delivery_attempts(10);
  s.mutable_dead_letter_policy()->set_enabled(true);
  (*s.mutable_labels())["service"] = "upload";
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace pettube;  // NOLINT: main only wires the parts together.
  const server::Options opts = server::ParseFlagsOrExit(argc, argv, "upload");
  auto workload = workload::FromFlags({"events.publish", "events.subscribe"});
  if (!workload.ok()) return server::ExitWith(workload.status());
  auto store = upload::RocksDbUploadStore::Open(opts.data_dir + "/db");
  if (!store.ok()) return server::ExitWith(store.status());
  auto blobs = upload::FsBlobStore::Open(opts.data_dir + "/objects");
  if (!blobs.ok()) return server::ExitWith(blobs.status());
  std::unique_ptr<signed_url::UrlSigner> signer;
  if (const std::string path = absl::GetFlag(FLAGS_url_signing_keys_file); !path.empty()) {
    auto keys = signed_url::KeyRing::FromFile("url_signing_keys_file", path);
    if (!keys.ok()) return server::ExitWith(keys.status());
    signer = std::make_unique<signed_url::UrlSigner>(*std::move(keys));
  }
  if (auto s = workload->authenticator->Prefetch(); !s.ok()) {
    log::Warning("auth.keys_unavailable", {{"code", s}});
  }

  std::unique_ptr<broker_client::Publisher> publisher;
  if (workload->broker_channel != nullptr) {
    broker_client::Publisher::Options po;
    po.configure_context = workload->ConfigureContext();
    // Backoff capped low: a returning broker gets the outbox soon.
    po.max_backoff = absl::Seconds(2);
    publisher = std::make_unique<broker_client::Publisher>(workload->broker_channel, po);
  } else {
    log::Warning("upload.no_broker", {{"reason", "no --broker_server: events wait in the outbox"}});
  }
  upload::UploadProbe probe(server::ProcessRegistry());
  upload::OutboxPublisher outbox(store->get(), publisher.get(), &probe);

  upload::Uploads::Options options;
  options.max_object_bytes = absl::GetFlag(FLAGS_max_object_bytes);
  options.quota_bytes = absl::GetFlag(FLAGS_quota_bytes);
  options.upload_ttl = absl::GetFlag(FLAGS_upload_ttl);
  options.checkpoint_bytes = absl::GetFlag(FLAGS_checkpoint_bytes);
  options.probe = &probe;
  upload::Uploads uploads(store->get(), blobs->get(), options,
                          [&outbox](const upload::OutboxEntry& e) { outbox.Publish(e); });
  if (auto s = uploads.Recover(); !s.ok()) return server::ExitWith(s);

  upload::ObjectServer objects(&uploads, signer.get(), workload->authenticator.get(), &probe);
  http::ServerOptions http_options;
  http_options.num_threads = absl::GetFlag(FLAGS_objects_threads);
  auto objects_http =
      http::HttpServer::Start(absl::GetFlag(FLAGS_objects_listen), objects.Routes(), http_options);
  if (!objects_http.ok()) {
    return server::ExitWith(absl::Status(objects_http.status().code(),
                                         absl::StrCat("objects_listen ",
                                                      objects_http.status().message())));
  }

  std::unique_ptr<broker_client::DurableConsumer> deletions;
  if (workload->broker_channel != nullptr) {
    broker_client::Subscriber::Options so;
    so.consumer = "upload";
    so.max_in_flight = 8;
    so.configure_context = workload->ConfigureContext();
    deletions = std::make_unique<broker_client::DurableConsumer>(
        workload->broker_channel, "upload-media-deleted", DeletedSubscription(), so);
    deletions->Start([&uploads](const broker_client::Delivery& d) {
      events::v1::MediaDeleted deleted;
      if (auto s = broker_client::UnpackPayload(d.event(), &deleted); !s.ok()) return s;
      return uploads.DeleteMedia(deleted.owner(), deleted.media());
    });
  }

  upload::UploadService service(uploads, *workload->authenticator);
  server::ServeSpec spec;
  spec.services.push_back(server::Expose<upload::v1::Upload>(&service));
  spec.ready_fields.emplace_back("objects", (*objects_http)->address());
  spec.configure_builder = [](grpc::ServerBuilder& builder) {
    // A Write stream's bytes wait in gRPC's receive window until the disk
    // takes them. BDP probing grows that window on a fast link to tens of
    // MiB per stream; a fixed window of two chunks keeps memory per stream
    // bounded and still keeps the disk busy.
    builder.AddChannelArgument(GRPC_ARG_HTTP2_BDP_PROBE, 0);
    builder.AddChannelArgument(GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES, 8 << 20);
  };
  spec.on_drain = [&] {
    if (deletions != nullptr) deletions->Shutdown(opts.drain_timeout);
  };
  const int code = server::Serve(opts, std::move(spec));
  // Callbacks into the outbox end here, before it goes.
  if (publisher != nullptr) publisher->Shutdown(absl::Seconds(2));
  return code;
}
