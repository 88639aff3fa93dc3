#include "services/media-catalog/catalog_service.h"

#include <grpcpp/support/proto_buffer_reader.h>

#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "libs/server/unary.h"
#include "libs/status/grpc_status.h"
#include "services/media-catalog/media_event.h"
#include "services/media-catalog/watch_media_reactor.h"

namespace pettube::catalog {
namespace {

constexpr char kReadScope[] = "media.read";
constexpr char kWriteScope[] = "media.write";

// A WatchMedia call refused before it starts.
class RefusedWatch : public grpc::ServerWriteReactor<v1::Media> {
 public:
  explicit RefusedWatch(const absl::Status& status) { Finish(status::ToGrpcStatus(status)); }
  void OnDone() override { delete this; }
};

}  // namespace

absl::StatusOr<auth::Caller> CatalogService::Authorize(const grpc::ServerContextBase& context,
                                                       absl::string_view scope) const {
  if (authenticator_ == nullptr) {
    return absl::UnauthenticatedError(
        "media-catalog runs without --auth_server: no caller can be authenticated");
  }
  return callers_->Authorize(context, scope);
}

CatalogService::CatalogService(Catalog* catalog, const MediaView* view,
                               const auth::Authenticator* authenticator, Options options)
    : catalog_(catalog), view_(view), authenticator_(authenticator), options_(std::move(options)) {
  if (options_.read_pool != nullptr) {
    readers_ = options_.read_pool;
  } else if (options_.read_threads > 0) {
    own_readers_ =
        std::make_unique<concurrency::ThreadPool>(options_.read_threads, options_.max_queued_reads);
    readers_ = own_readers_.get();
  }
  if (authenticator_ != nullptr) {
    callers_ = std::make_unique<CallerCache>(authenticator_, CallerCache::Options{});
  }
  SetMessageAllocatorFor_ListMedia(&list_allocator_);
}

void CatalogService::Drain() { catalog_->feed().Close(); }

bool CatalogService::RunRead(std::function<void()> work) {
  if (readers_ == nullptr) {
    work();
    return true;
  }
  return readers_->TrySchedule(std::move(work));
}

absl::Status CatalogService::Overloaded() const {
  return absl::ResourceExhaustedError(
      absl::StrCat("media-catalog is overloaded: ", options_.max_queued_reads,
                   " reads are already waiting for a read thread; retry with backoff"));
}

grpc::ServerUnaryReactor* CatalogService::GetMedia(grpc::CallbackServerContext* context,
                                                   const grpc::ByteBuffer* raw_request,
                                                   grpc::ByteBuffer* response) {
  auto caller = Authorize(*context, kReadScope);
  if (!caller.ok()) return server::FinishUnary(context, caller.status());
  v1::GetMediaRequest request;
  // A copy shares the slices; ProtoBufferReader wants a mutable buffer.
  grpc::ByteBuffer request_bytes(*raw_request);
  grpc::ProtoBufferReader reader(&request_bytes);
  if (!request.ParseFromZeroCopyStream(&reader)) {
    return server::FinishUnary(context,
                               absl::InvalidArgumentError("GetMediaRequest: does not parse"));
  }
  auto id = ParseMediaName("name", request.name());
  if (!id.ok()) return server::FinishUnary(context, id.status());
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (AnswerRendered(*caller, request.name(), *id, response, reactor)) return reactor;
  // A record in memory is answered on this thread; one that needs the disk
  // waits for a read thread, so a slow disk never holds gRPC's threads (and
  // a cheap read pays no hand-off).
  if (readers_ != nullptr &&
      AnswerGet(*caller, request.name(), *id, response, reactor, kMemoryOnly)) {
    return reactor;
  }
  const bool queued =
      RunRead([this, reactor, caller = *std::move(caller),
               name = std::move(*request.mutable_name()), id = *std::move(id),
               response] { AnswerGet(caller, name, id, response, reactor, kMayReadDisk); });
  if (!queued) reactor->Finish(status::ToGrpcStatus(Overloaded()));
  return reactor;
}

bool CatalogService::AnswerRendered(const auth::Caller& caller, absl::string_view name,
                                    absl::string_view id, grpc::ByteBuffer* response,
                                    grpc::ServerUnaryReactor* reactor) {
  std::shared_ptr<const RenderedMedia> rendered;
  if (options_.rendered == nullptr || !options_.rendered->Get(id, &rendered)) return false;
  if (!Catalog::CanRead(caller, *rendered)) {
    reactor->Finish(status::ToGrpcStatus(Catalog::NoMedia(name)));
    return true;
  }
  if (!StampInto(*rendered, response)) return false;
  reactor->Finish(grpc::Status::OK);
  return true;
}

bool CatalogService::StampInto(const RenderedMedia& rendered, grpc::ByteBuffer* response) const {
  grpc_slice bytes = grpc_slice_malloc(rendered.wire.size());
  if (!view_->Stamp(rendered, reinterpret_cast<char*>(GRPC_SLICE_START_PTR(bytes)))) {
    grpc_slice_unref(bytes);
    return false;
  }
  grpc::Slice slice(bytes, grpc::Slice::STEAL_REF);
  *response = grpc::ByteBuffer(&slice, 1);
  return true;
}

bool CatalogService::AnswerGet(const auth::Caller& caller, absl::string_view name,
                               absl::string_view id, grpc::ByteBuffer* response,
                               grpc::ServerUnaryReactor* reactor, ReadFrom from) {
  // Taken before the read: a write that lands during it keeps this read's
  // rendering out of the cache (ticketed_cache.h).
  const uint64_t ticket = options_.rendered != nullptr ? options_.rendered->Ticket(id) : 0;
  // The record is parsed into an arena on this thread's stack: its many
  // sub-messages and map entries cost no allocations of their own.
  alignas(std::max_align_t) char block[8192];
  google::protobuf::Arena arena(server::ArenaOnBlock(block, sizeof(block)));
  auto* media = google::protobuf::Arena::CreateMessage<StoredMedia>(&arena);
  absl::Status read;
  if (from == kMemoryOnly) {
    absl::StatusOr<bool> in_memory = catalog_->ReadFromMemory(caller, name, media);
    if (in_memory.ok() && !*in_memory) return false;
    read = in_memory.status();
  } else {
    read = catalog_->Read(caller, name, media);
  }
  if (!read.ok()) {
    reactor->Finish(status::ToGrpcStatus(read));
    return true;
  }
  if (options_.rendered != nullptr) {
    std::shared_ptr<const RenderedMedia> rendered = view_->Prerender(*media);
    if (rendered != nullptr) {
      options_.rendered->Fill(id, rendered, ticket);
      if (StampInto(*rendered, response)) {
        reactor->Finish(grpc::Status::OK);
        return true;
      }
    }
  }
  auto* out = google::protobuf::Arena::CreateMessage<v1::Media>(&arena);
  view_->RenderInto(*media, out);
  bool own_buffer = false;
  grpc::Status serialized =
      grpc::SerializationTraits<v1::Media>::Serialize(*out, response, &own_buffer);
  reactor->Finish(serialized);
  return true;
}

grpc::ServerUnaryReactor* CatalogService::ListMedia(grpc::CallbackServerContext* context,
                                                    const v1::ListMediaRequest* request,
                                                    v1::ListMediaResponse* response) {
  auto caller = Authorize(*context, kReadScope);
  if (!caller.ok()) return server::FinishUnary(context, caller.status());
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  const bool queued = RunRead([this, reactor, caller = *std::move(caller), request, response] {
    auto page = catalog_->List(caller, *request);
    if (page.ok()) {
      for (const StoredMedia& media : page->media) view_->RenderInto(media, response->add_media());
      response->set_next_page_token(std::move(page->next_page_token));
    }
    reactor->Finish(status::ToGrpcStatus(page.status()));
  });
  if (!queued) reactor->Finish(status::ToGrpcStatus(Overloaded()));
  return reactor;
}

grpc::ServerUnaryReactor* CatalogService::UpdateMedia(grpc::CallbackServerContext* context,
                                                      const v1::UpdateMediaRequest* request,
                                                      v1::Media* response) {
  auto caller = Authorize(*context, kWriteScope);
  if (!caller.ok()) return server::FinishUnary(context, caller.status());
  auto media = catalog_->Update(*caller, *request);
  if (!media.ok()) return server::FinishUnary(context, media.status());
  *response = view_->Render(*media);
  return server::FinishUnary(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* CatalogService::DeleteMedia(grpc::CallbackServerContext* context,
                                                      const v1::DeleteMediaRequest* request,
                                                      google::protobuf::Empty*) {
  auto caller = Authorize(*context, kWriteScope);
  if (!caller.ok()) return server::FinishUnary(context, caller.status());
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  catalog_->Delete(*caller, *request, [reactor](absl::Status status) {
    reactor->Finish(status::ToGrpcStatus(status));
  });
  return reactor;
}

grpc::ServerWriteReactor<v1::Media>* CatalogService::WatchMedia(
    grpc::CallbackServerContext* context, const v1::WatchMediaRequest* request) {
  auto caller = Authorize(*context, kReadScope);
  if (!caller.ok()) return new RefusedWatch(caller.status());
  std::string media_id;
  if (!request->name().empty() && request->name() != "media/-") {
    auto id = ParseMediaName("name", request->name());
    if (!id.ok()) return new RefusedWatch(id.status());
    media_id = std::move(*id);
  }
  return new WatchMediaReactor(catalog_, view_, std::move(*caller), std::move(media_id),
                               options_.watch_initial_limit);
}

grpc::ServerUnaryReactor* CatalogService::CreateBackup(grpc::CallbackServerContext* context,
                                                       const v1::CreateBackupRequest*,
                                                       v1::Backup* response) {
  auto caller = Authorize(*context, kAdminScope);
  if (!caller.ok()) return server::FinishUnary(context, caller.status());
  if (options_.backup_dir.empty()) {
    return server::FinishUnary(
        context, absl::FailedPreconditionError("CreateBackup: the server has no --backup_dir"));
  }
  return server::FinishUnary(context, catalog_->Backup(*caller, options_.backup_dir), response);
}

}  // namespace pettube::catalog
