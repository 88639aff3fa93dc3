#pragma once

// Writing transcode outputs into the upload service's object store. An
// interface so the coordinator and worker cores can be tested with a fake;
// GrpcObjectWriter is the real one (pettube.upload.v1.Upload: CreateUpload
// in the given bucket, then Write streams of <= 4 MiB chunks resumed from
// QueryUpload's committed size, the last chunk with finish_write and the
// SHA-256).

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "libs/auth/credentials/token_source.h"
#include "proto/pettube/events/v1/events.pb.h"
#include "proto/pettube/upload/v1/upload.grpc.pb.h"

namespace pettube::transcode {

// Thread-safe implementations only.
class ObjectWriter {
 public:
  virtual ~ObjectWriter() = default;
  // Stores `bytes` at bucket/key; returns the committed object (size,
  // SHA-256, content type). Replaces an object already there.
  virtual absl::StatusOr<pettube::events::v1::ObjectRef> PutBytes(absl::string_view bucket,
                                                                  absl::string_view key,
                                                                  absl::string_view content_type,
                                                                  absl::string_view bytes) = 0;
  // Stores the file at `path`.
  virtual absl::StatusOr<pettube::events::v1::ObjectRef> PutFile(absl::string_view bucket,
                                                                 absl::string_view key,
                                                                 absl::string_view content_type,
                                                                 const std::string& path) = 0;
};

// Lower-case hex SHA-256 of a file / of bytes. NOT_FOUND / INTERNAL for an
// unreadable file.
absl::StatusOr<std::string> Sha256OfFile(const std::string& path);
std::string Sha256Of(absl::string_view bytes);

// ObjectWriter over the upload service's gRPC API, with a workload token
// holding objects.write. A dropped Write stream is resumed (QueryUpload)
// up to `max_resumes` times. Thread-safe.
class GrpcObjectWriter : public ObjectWriter {
 public:
  GrpcObjectWriter(std::shared_ptr<grpc::Channel> channel,
                   std::shared_ptr<auth::TokenSource> tokens, int max_resumes = 5,
                   absl::Duration call_timeout = absl::Minutes(5));

  absl::StatusOr<pettube::events::v1::ObjectRef> PutBytes(absl::string_view bucket,
                                                          absl::string_view key,
                                                          absl::string_view content_type,
                                                          absl::string_view bytes) override;
  absl::StatusOr<pettube::events::v1::ObjectRef> PutFile(absl::string_view bucket,
                                                         absl::string_view key,
                                                         absl::string_view content_type,
                                                         const std::string& path) override;

 private:
  // Reads `size` bytes at `offset` of the object's content.
  using ChunkReader = std::function<absl::Status(int64_t offset, size_t size, std::string* out)>;
  absl::StatusOr<pettube::events::v1::ObjectRef> Put(absl::string_view bucket,
                                                     absl::string_view key,
                                                     absl::string_view content_type, int64_t size,
                                                     const std::string& sha256,
                                                     const ChunkReader& read);
  absl::Status Prepare(grpc::ClientContext& context);

  std::unique_ptr<pettube::upload::v1::Upload::Stub> stub_;
  std::shared_ptr<auth::TokenSource> tokens_;
  const int max_resumes_;
  const absl::Duration call_timeout_;
};

}  // namespace pettube::transcode
