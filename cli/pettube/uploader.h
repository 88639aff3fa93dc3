#pragma once

// A person's resumable upload of one file into the originals store over
// pettube.upload.v1.Upload: CreateUpload, Write streams from the committed
// size (resumed after a dropped connection or an interrupted run, via
// QueryUpload), the last chunk carrying finish_write and the SHA-256.
// Not thread-safe.

#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "cli/pettube/config.h"
#include "proto/pettube/upload/v1/upload.grpc.pb.h"

namespace pettube::cli {

struct UploadResult {
  std::string media;    // "media/{id}"
  std::string upload;   // "uploads/{id}"
  int64_t size_bytes = 0;
  std::string sha256;
  int64_t resumed_from = 0;  // bytes already stored before this run
};

// Progress: bytes handed to the stream so far, of `total`.
struct UploadCallbacks {
  std::function<void(int64_t start_offset, int64_t total)> on_start;
  std::function<void(int64_t done)> on_progress;
};

class Uploader {
 public:
  // `token` returns a bearer token with media.upload for each call.
  Uploader(std::shared_ptr<grpc::Channel> channel,
           std::function<absl::StatusOr<std::string>()> token);

  // Uploads `path` titled `title`. An unfinished upload of the same file
  // (same path, size and mtime) recorded in `resume` is continued; the
  // record is kept until the commit, then removed. Codes: NOT_FOUND (file),
  // the server's codes (INVALID_ARGUMENT for a file that is not a video,
  // DATA_LOSS, ...), UNAVAILABLE after retries.
  absl::StatusOr<UploadResult> UploadFile(const std::string& path, const std::string& title,
                                          ResumeStore& resume, const UploadCallbacks& callbacks);

  // Chunk size on the Write stream (the server takes up to 4 MiB).
  static constexpr int64_t kChunkBytes = 1 << 20;

 private:
  absl::Status Prepare(grpc::ClientContext& ctx);
  absl::StatusOr<pettube::upload::v1::UploadSession> Query(const std::string& name);
  // One Write stream from the session's committed size to the end.
  absl::StatusOr<pettube::upload::v1::WriteResponse> WriteFrom(const std::string& path,
                                                               const std::string& upload,
                                                               int64_t offset, int64_t total,
                                                               const std::string& sha256,
                                                               const UploadCallbacks& callbacks);

  std::unique_ptr<pettube::upload::v1::Upload::Stub> stub_;
  std::function<absl::StatusOr<std::string>()> token_;
};

// The MIME type for a video file name by its extension
// ("application/octet-stream" when unknown).
std::string ContentTypeForPath(const std::string& path);

// Lower-case hex SHA-256 of the whole file.
absl::StatusOr<std::string> Sha256OfFile(const std::string& path);

}  // namespace pettube::cli
