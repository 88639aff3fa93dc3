#include "services/media-catalog/catalog_service.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "libs/server/unary.h"
#include "libs/status/grpc_status.h"
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
  SetMessageAllocatorFor_GetMedia(&get_allocator_);
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
                                                   const v1::GetMediaRequest* request,
                                                   v1::Media* response) {
  auto caller = Authorize(*context, kReadScope);
  if (!caller.ok()) return server::FinishUnary(context, caller.status());
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  // A record in memory is answered on this thread; one that needs the disk
  // waits for a read thread, so a slow disk never holds gRPC's threads (and
  // a cheap read pays no hand-off).
  if (readers_ != nullptr && AnswerGet(*caller, *request, response, reactor, kMemoryOnly)) {
    return reactor;
  }
  const bool queued = RunRead([this, reactor, caller = *std::move(caller), request, response] {
    AnswerGet(caller, *request, response, reactor, kMayReadDisk);
  });
  if (!queued) reactor->Finish(status::ToGrpcStatus(Overloaded()));
  return reactor;
}

bool CatalogService::AnswerGet(const auth::Caller& caller, const v1::GetMediaRequest& request,
                               v1::Media* response, grpc::ServerUnaryReactor* reactor,
                               ReadFrom from) {
  // The record is parsed into an arena on this thread's stack: its many
  // sub-messages and map entries cost no allocations of their own.
  alignas(std::max_align_t) char block[8192];
  google::protobuf::Arena arena(server::ArenaOnBlock(block, sizeof(block)));
  auto* media = google::protobuf::Arena::CreateMessage<StoredMedia>(&arena);
  absl::Status read;
  if (from == kMemoryOnly) {
    absl::StatusOr<bool> in_memory = catalog_->ReadFromMemory(caller, request.name(), media);
    if (in_memory.ok() && !*in_memory) return false;
    read = in_memory.status();
  } else {
    read = catalog_->Read(caller, request.name(), media);
  }
  if (read.ok()) view_->RenderInto(*media, response);
  reactor->Finish(status::ToGrpcStatus(read));
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
