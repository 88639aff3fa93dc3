#include "services/transcode-worker/object_writer.h"

#include <openssl/evp.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "libs/status/grpc_status.h"

namespace pettube::transcode {
namespace {

constexpr size_t kChunk = size_t{4} << 20;

std::string Hex(const unsigned char* digest, unsigned int len) {
  return absl::BytesToHexString(absl::string_view(reinterpret_cast<const char*>(digest), len));
}

}  // namespace

std::string Sha256Of(absl::string_view bytes) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(bytes.data(), bytes.size(), digest, &len, EVP_sha256(), nullptr);
  return Hex(digest, len);
}

absl::StatusOr<std::string> Sha256OfFile(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) {
    return absl::NotFoundError(absl::StrCat("open ", path, ": ", strerror(errno)));
  }
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr);
  std::string buf(1 << 20, '\0');
  size_t got;
  while ((got = std::fread(buf.data(), 1, buf.size(), f)) > 0)
    EVP_DigestUpdate(ctx, buf.data(), got);
  const bool failed = std::ferror(f) != 0;
  std::fclose(f);
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(ctx, digest, &len);
  EVP_MD_CTX_free(ctx);
  if (failed) return absl::InternalError(absl::StrCat("read ", path));
  return Hex(digest, len);
}

GrpcObjectWriter::GrpcObjectWriter(std::shared_ptr<grpc::Channel> channel,
                                   std::shared_ptr<auth::TokenSource> tokens, int max_resumes,
                                   absl::Duration call_timeout)
    : stub_(pettube::upload::v1::Upload::NewStub(channel)),
      tokens_(std::move(tokens)),
      max_resumes_(max_resumes),
      call_timeout_(call_timeout) {}

absl::Status GrpcObjectWriter::Prepare(grpc::ClientContext& context) {
  context.set_deadline(absl::ToChronoTime(absl::Now() + call_timeout_));
  if (tokens_ != nullptr) return tokens_->Attach(context);
  return absl::OkStatus();
}

absl::StatusOr<pettube::events::v1::ObjectRef> GrpcObjectWriter::PutBytes(
    absl::string_view bucket, absl::string_view key, absl::string_view content_type,
    absl::string_view bytes) {
  return Put(bucket, key, content_type, static_cast<int64_t>(bytes.size()), Sha256Of(bytes),
             [bytes](int64_t offset, size_t size, std::string* out) {
               out->assign(std::string(bytes.substr(static_cast<size_t>(offset), size)));
               return absl::OkStatus();
             });
}

absl::StatusOr<pettube::events::v1::ObjectRef> GrpcObjectWriter::PutFile(
    absl::string_view bucket, absl::string_view key, absl::string_view content_type,
    const std::string& path) {
  auto sha = Sha256OfFile(path);
  if (!sha.ok()) return sha.status();
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) return absl::NotFoundError(absl::StrCat("open ", path));
  const int64_t size = static_cast<int64_t>(in.tellg());
  return Put(bucket, key, content_type, size, *sha,
             [&in, path](int64_t offset, size_t n, std::string* out) {
               out->resize(n);
               in.clear();
               in.seekg(offset);
               in.read(out->data(), static_cast<std::streamsize>(n));
               if (static_cast<size_t>(in.gcount()) != n) {
                 return absl::DataLossError(absl::StrCat("read ", path, ": file changed"));
               }
               return absl::OkStatus();
             });
}

absl::StatusOr<pettube::events::v1::ObjectRef> GrpcObjectWriter::Put(
    absl::string_view bucket, absl::string_view key, absl::string_view content_type, int64_t size,
    const std::string& sha256, const ChunkReader& read) {
  pettube::upload::v1::CreateUploadRequest create;
  create.set_bucket(std::string(bucket));
  create.set_key(std::string(key));
  create.set_content_type(std::string(content_type));
  create.set_total_size(size);
  create.set_sha256(sha256);
  create.set_title(std::string(key));
  pettube::upload::v1::UploadSession session;
  {
    grpc::ClientContext context;
    if (auto s = Prepare(context); !s.ok()) return s;
    grpc::Status s = stub_->CreateUpload(&context, create, &session);
    if (!s.ok()) return status::FromGrpcStatus(s, absl::StrCat("CreateUpload ", bucket, "/", key));
  }
  int64_t committed = session.committed_size();
  absl::Status last;
  for (int attempt = 0; attempt <= max_resumes_; ++attempt) {
    if (attempt > 0) {
      grpc::ClientContext context;
      if (auto s = Prepare(context); !s.ok()) return s;
      pettube::upload::v1::QueryUploadRequest query;
      query.set_name(session.name());
      grpc::Status s = stub_->QueryUpload(&context, query, &session);
      if (!s.ok()) {
        last = status::FromGrpcStatus(s, "QueryUpload");
        if (last.code() != absl::StatusCode::kUnavailable) return last;
        continue;
      }
      committed = session.committed_size();
    }
    if (session.state() == pettube::upload::v1::COMMITTED) break;
    grpc::ClientContext context;
    if (auto s = Prepare(context); !s.ok()) return s;
    pettube::upload::v1::WriteResponse response;
    auto writer = stub_->Write(&context, &response);
    int64_t offset = committed;
    bool write_failed = false;
    do {
      pettube::upload::v1::WriteRequest chunk;
      chunk.set_upload(session.name());
      chunk.set_write_offset(offset);
      const size_t n = static_cast<size_t>(std::min<int64_t>(kChunk, size - offset));
      if (auto s = read(offset, n, chunk.mutable_data()); !s.ok()) return s;
      offset += static_cast<int64_t>(n);
      if (offset == size) {
        chunk.set_finish_write(true);
        chunk.set_sha256(sha256);
      }
      if (!writer->Write(chunk)) {
        write_failed = true;
        break;
      }
    } while (offset < size);
    if (!write_failed) writer->WritesDone();
    grpc::Status s = writer->Finish();
    if (s.ok() && response.has_committed()) {
      pettube::events::v1::ObjectRef ref;
      ref.set_store(std::string(bucket));
      ref.set_key(std::string(key));
      ref.set_size_bytes(response.committed().size_bytes());
      ref.set_sha256(response.committed().sha256());
      ref.set_content_type(std::string(content_type));
      return ref;
    }
    last = s.ok() ? absl::DataLossError("Write: stream ended without a commit")
                  : status::FromGrpcStatus(s, absl::StrCat("Write ", bucket, "/", key));
    // Only transport trouble is worth resuming; a refusal is final.
    if (!s.ok() && s.error_code() != grpc::StatusCode::UNAVAILABLE &&
        s.error_code() != grpc::StatusCode::DEADLINE_EXCEEDED &&
        s.error_code() != grpc::StatusCode::ABORTED &&
        s.error_code() != grpc::StatusCode::OUT_OF_RANGE) {
      return last;
    }
  }
  if (session.state() == pettube::upload::v1::COMMITTED) {
    pettube::events::v1::ObjectRef ref;
    ref.set_store(std::string(bucket));
    ref.set_key(std::string(key));
    ref.set_size_bytes(session.committed().size_bytes());
    ref.set_sha256(session.committed().sha256());
    ref.set_content_type(std::string(content_type));
    return ref;
  }
  return last;
}

}  // namespace pettube::transcode
