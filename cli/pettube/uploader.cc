#include "cli/pettube/uploader.h"

#include <openssl/evp.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <thread>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "libs/status/grpc_status.h"

namespace pettube::cli {
namespace {

using pettube::upload::v1::CreateUploadRequest;
using pettube::upload::v1::QueryUploadRequest;
using pettube::upload::v1::UploadSession;
using pettube::upload::v1::WriteRequest;
using pettube::upload::v1::WriteResponse;

constexpr int kMaxAttempts = 5;

}  // namespace

std::string ContentTypeForPath(const std::string& path) {
  const std::string ext = absl::AsciiStrToLower(std::filesystem::path(path).extension().string());
  if (ext == ".mp4" || ext == ".m4v") return "video/mp4";
  if (ext == ".mov") return "video/quicktime";
  if (ext == ".mkv") return "video/x-matroska";
  if (ext == ".webm") return "video/webm";
  if (ext == ".avi") return "video/x-msvideo";
  if (ext == ".ts") return "video/mp2t";
  return "application/octet-stream";
}

absl::StatusOr<std::string> Sha256OfFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open"));
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> md(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  EVP_DigestInit_ex(md.get(), EVP_sha256(), nullptr);
  std::vector<char> buf(1 << 20);
  while (in) {
    in.read(buf.data(), buf.size());
    if (in.gcount() > 0) EVP_DigestUpdate(md.get(), buf.data(), in.gcount());
  }
  if (in.bad()) return absl::InternalError(absl::StrCat(path, ": read error"));
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(md.get(), digest, &len);
  return absl::BytesToHexString(absl::string_view(reinterpret_cast<char*>(digest), len));
}

Uploader::Uploader(std::shared_ptr<grpc::Channel> channel,
                   std::function<absl::StatusOr<std::string>()> token)
    : stub_(pettube::upload::v1::Upload::NewStub(channel)), token_(std::move(token)) {}

absl::Status Uploader::Prepare(grpc::ClientContext& ctx) {
  auto token = token_();
  if (!token.ok()) return token.status();
  ctx.AddMetadata("authorization", absl::StrCat("Bearer ", *token));
  return absl::OkStatus();
}

absl::StatusOr<UploadSession> Uploader::Query(const std::string& name) {
  grpc::ClientContext ctx;
  if (auto s = Prepare(ctx); !s.ok()) return s;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(15)));
  QueryUploadRequest req;
  req.set_name(name);
  UploadSession session;
  const grpc::Status s = stub_->QueryUpload(&ctx, req, &session);
  if (!s.ok()) return status::FromGrpcStatus(s, "QueryUpload");
  return session;
}

absl::StatusOr<WriteResponse> Uploader::WriteFrom(const std::string& path,
                                                  const std::string& upload, int64_t offset,
                                                  int64_t total, const std::string& sha256,
                                                  const UploadCallbacks& callbacks) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open"));
  in.seekg(offset);
  grpc::ClientContext ctx;
  if (auto s = Prepare(ctx); !s.ok()) return s;
  WriteResponse resp;
  auto writer = stub_->Write(&ctx, &resp);
  std::vector<char> buf(kChunkBytes);
  int64_t at = offset;
  bool first = true;
  for (;;) {
    const int64_t want = std::min<int64_t>(kChunkBytes, total - at);
    if (want > 0) in.read(buf.data(), want);
    if (want > 0 && in.gcount() != want) {
      writer->WritesDone();
      ctx.TryCancel();
      writer->Finish();
      return absl::FailedPreconditionError(
          absl::StrCat(path, ": file changed while uploading (short read at ", at, ")"));
    }
    WriteRequest req;
    if (first) req.set_upload(upload);
    first = false;
    req.set_write_offset(at);
    req.set_data(buf.data(), want);
    const bool last = at + want >= total;
    if (last) {
      req.set_finish_write(true);
      req.set_sha256(sha256);
    }
    if (!writer->Write(req)) break;  // Stream broken: Finish() says why.
    at += want;
    if (callbacks.on_progress) callbacks.on_progress(at);
    if (last) break;
  }
  writer->WritesDone();
  const grpc::Status s = writer->Finish();
  if (!s.ok()) return status::FromGrpcStatus(s, "Write");
  return resp;
}

absl::StatusOr<UploadResult> Uploader::UploadFile(const std::string& path,
                                                  const std::string& title, ResumeStore& resume,
                                                  const UploadCallbacks& callbacks) {
  std::error_code ec;
  const std::string absolute = std::filesystem::absolute(path, ec).lexically_normal().string();
  struct stat st {};
  if (::stat(absolute.c_str(), &st) != 0) {
    return absl::NotFoundError(absl::StrCat(path, ": ", std::strerror(errno)));
  }
  if (!S_ISREG(st.st_mode)) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": not a regular file"));
  }
  const int64_t size = st.st_size;
  const int64_t mtime_ns = static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
  const std::string key = ResumeStore::Key(absolute, size, mtime_ns);
  auto sha256 = Sha256OfFile(absolute);
  if (!sha256.ok()) return sha256.status();

  UploadResult result;
  result.size_bytes = size;
  result.sha256 = *sha256;
  UploadSession session;
  if (auto previous = resume.Find(key)) {
    auto queried = Query(*previous);
    if (queried.ok() && (queried->state() == pettube::upload::v1::ACTIVE ||
                         queried->state() == pettube::upload::v1::COMMITTED)) {
      session = *queried;
      result.resumed_from = session.committed_size();
    } else {
      resume.Remove(key);  // Expired, aborted or unknown: start over.
    }
  }
  if (session.name().empty()) {
    grpc::ClientContext ctx;
    if (auto s = Prepare(ctx); !s.ok()) return s;
    ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(15)));
    CreateUploadRequest req;
    req.set_title(title);
    req.set_content_type(ContentTypeForPath(absolute));
    req.set_total_size(size);
    req.set_sha256(*sha256);
    const grpc::Status s = stub_->CreateUpload(&ctx, req, &session);
    if (!s.ok()) return status::FromGrpcStatus(s, "CreateUpload");
    resume.Put(key, session.name());
    if (auto saved = resume.Save(); !saved.ok()) return saved;
  }
  result.upload = session.name();
  result.media = session.media();

  if (session.state() == pettube::upload::v1::COMMITTED) {
    resume.Remove(key);
    (void)resume.Save();
    if (callbacks.on_start) callbacks.on_start(size, size);
    return result;
  }
  if (callbacks.on_start) callbacks.on_start(session.committed_size(), size);

  int64_t offset = session.committed_size();
  absl::Status last_error;
  for (int attempt = 0; attempt < kMaxAttempts; ++attempt) {
    if (attempt > 0) {
      // Backoff before reconnecting: a real deadline, not a poll.
      std::this_thread::sleep_for(std::chrono::milliseconds(250 << attempt));
      auto queried = Query(session.name());
      if (!queried.ok()) {
        last_error = queried.status();
        if (absl::IsUnavailable(last_error) || absl::IsDeadlineExceeded(last_error)) continue;
        return last_error;
      }
      if (queried->state() == pettube::upload::v1::COMMITTED) {
        offset = size;
        break;
      }
      offset = queried->committed_size();
    }
    auto written = WriteFrom(absolute, session.name(), offset, size, *sha256, callbacks);
    if (written.ok()) {
      if (!written->committed().media().empty()) result.media = written->committed().media();
      last_error = absl::OkStatus();
      break;
    }
    last_error = written.status();
    // Retry only what a new stream can fix.
    if (!absl::IsUnavailable(last_error) && !absl::IsDeadlineExceeded(last_error) &&
        !absl::IsAborted(last_error) && !absl::IsOutOfRange(last_error)) {
      return last_error;
    }
  }
  if (!last_error.ok()) return last_error;
  resume.Remove(key);
  if (auto saved = resume.Save(); !saved.ok()) return saved;
  return result;
}

}  // namespace pettube::cli
