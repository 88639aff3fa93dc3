#pragma once

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "libs/auth/credentials/authenticator.h"
#include "libs/concurrency/thread_pool.h"
#include "libs/server/arena_message_allocator.h"
#include "proto/pettube/catalog/v1/catalog.grpc.pb.h"
#include "services/media-catalog/caller_cache.h"
#include "services/media-catalog/catalog.h"
#include "services/media-catalog/media_view.h"

namespace pettube::catalog {

// The MediaCatalog API on gRPC's callback API: authenticates each call
// (media.read to read, media.write to change, media.admin for backups),
// hands it to the Catalog and renders records with MediaView (fresh signed
// URLs on every response). Unary calls finish on the calling thread but
// DeleteMedia, which finishes when the broker has stored the deletion
// event; each WatchMedia call is a WatchMediaReactor. GetMedia is a raw
// method: its response may be a rendered record's bytes, stamped with
// fresh URLs (rendered_media.h), that never become a message here.
//
// Shares the catalog, the view and the authenticator (all must outlive the
// server; a null authenticator refuses every call UNAUTHENTICATED).
// Thread-safe.
class CatalogService
    : public v1::MediaCatalog::WithRawCallbackMethod_GetMedia<v1::MediaCatalog::CallbackService> {
 public:
  struct Options {
    // Where CreateBackup puts its checkpoints.
    std::string backup_dir;
    // WatchMedia for all of a caller's media first sends this many newest.
    int watch_initial_limit = 1000;
    // Threads that run GetMedia and ListMedia (store read and render), off
    // gRPC's polling threads: a read that waits on the disk never stalls
    // the connection, and the calls of one connection use every core. A
    // GetMedia whose record is in memory (memtable, row or block cache) is
    // answered on gRPC's thread without the hand-off.
    // 0: run every read on gRPC's threads.
    int read_threads = 2;
    // Reads waiting for a read thread beyond this are refused
    // RESOURCE_EXHAUSTED (0: no bound): an overloaded catalog sheds calls
    // instead of queuing them without limit.
    size_t max_queued_reads = 4096;
    // If set, runs the reads instead of a pool of its own (tests); must
    // outlive the service.
    concurrency::ThreadPool* read_pool = nullptr;
    // If set, GetMedia answers from records rendered once (and fills it
    // with those it renders); the store must erase a record's entry after
    // each write of it (RocksDbMediaStore::Options::on_record_written).
    // Must outlive the service.
    RenderedCache* rendered = nullptr;
  };

  CatalogService(Catalog* catalog, const MediaView* view, const auth::Authenticator* authenticator,
                 Options options);

  // Ends every WatchMedia stream with UNAVAILABLE (server drain); streams
  // started later end at once.
  void Drain();

  // Takes a serialized GetMediaRequest, answers a serialized Media.
  grpc::ServerUnaryReactor* GetMedia(grpc::CallbackServerContext* context,
                                     const grpc::ByteBuffer* request,
                                     grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* ListMedia(grpc::CallbackServerContext* context,
                                      const v1::ListMediaRequest* request,
                                      v1::ListMediaResponse* response) override;
  grpc::ServerUnaryReactor* UpdateMedia(grpc::CallbackServerContext* context,
                                        const v1::UpdateMediaRequest* request,
                                        v1::Media* response) override;
  grpc::ServerUnaryReactor* DeleteMedia(grpc::CallbackServerContext* context,
                                        const v1::DeleteMediaRequest* request,
                                        google::protobuf::Empty* response) override;
  grpc::ServerWriteReactor<v1::Media>* WatchMedia(grpc::CallbackServerContext* context,
                                                  const v1::WatchMediaRequest* request) override;
  grpc::ServerUnaryReactor* CreateBackup(grpc::CallbackServerContext* context,
                                         const v1::CreateBackupRequest* request,
                                         v1::Backup* response) override;

 private:
  absl::StatusOr<auth::Caller> Authorize(const grpc::ServerContextBase& context,
                                         absl::string_view scope) const;
  // A read refused because the read threads' queue is full.
  absl::Status Overloaded() const;
  enum ReadFrom { kMemoryOnly, kMayReadDisk };
  // Answers one GetMedia from its rendered record. False, nothing done,
  // when there is none or it cannot be stamped now.
  bool AnswerRendered(const auth::Caller& caller, absl::string_view name, absl::string_view id,
                      grpc::ByteBuffer* response, grpc::ServerUnaryReactor* reactor);
  // Reads, renders and finishes one GetMedia (and fills the rendered
  // cache). False, nothing done, when `from` is kMemoryOnly and the record
  // needs the disk.
  bool AnswerGet(const auth::Caller& caller, absl::string_view name, absl::string_view id,
                 grpc::ByteBuffer* response, grpc::ServerUnaryReactor* reactor, ReadFrom from);
  // `rendered`'s response stamped now into `response`; false if it cannot be.
  bool StampInto(const RenderedMedia& rendered, grpc::ByteBuffer* response) const;

  Catalog* const catalog_;
  const MediaView* const view_;
  const auth::Authenticator* const authenticator_;
  const Options options_;
  // Null without an authenticator.
  std::unique_ptr<CallerCache> callers_;
  // Runs `work` on the read threads (or at once without them). False,
  // `work` dropped, if too many reads wait already.
  bool RunRead(std::function<void()> work);

  std::unique_ptr<concurrency::ThreadPool> own_readers_;
  concurrency::ThreadPool* readers_ = nullptr;  // null: reads run on gRPC's threads
  // ListMedia's requests and responses live on a per-call arena.
  server::ArenaMessageAllocator<v1::ListMediaRequest, v1::ListMediaResponse, 65536> list_allocator_;
};

}  // namespace pettube::catalog
