#include "services/upload/fs_blob_store.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "services/upload/object_keys.h"

namespace pettube::upload {
namespace {

constexpr char kStagingDir[] = ".staging";

absl::Status Errno(absl::string_view what, const std::string& path, int err = errno) {
  const std::string message = absl::StrCat(what, " ", path, ": ", std::strerror(err));
  if (err == ENOENT) return absl::NotFoundError(message);
  if (err == ENOSPC || err == EDQUOT) return absl::ResourceExhaustedError(message);
  return absl::InternalError(message);
}

// Makes a rename or unlink in `dir` durable.
absl::Status SyncDir(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return Errno("open directory", dir);
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  return rc == 0 ? absl::OkStatus() : Errno("fsync directory", dir, err);
}

// mkdir -p that also makes each new directory's entry durable.
absl::Status MakeDirs(const std::string& root, const std::string& dir) {
  if (dir.size() <= root.size()) return absl::OkStatus();
  struct stat st;
  if (::stat(dir.c_str(), &st) == 0) {
    return S_ISDIR(st.st_mode) ? absl::OkStatus()
                               : absl::FailedPreconditionError(
                                     absl::StrCat(dir, ": exists and is not a directory"));
  }
  const std::string parent = dir.substr(0, dir.rfind('/'));
  if (auto s = MakeDirs(root, parent); !s.ok()) return s;
  if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) return Errno("mkdir", dir);
  return SyncDir(parent);
}

class FsStagedWriter : public StagedWriter {
 public:
  FsStagedWriter(int fd, std::string path, int64_t offset)
      : fd_(fd), path_(std::move(path)), offset_(offset) {}
  ~FsStagedWriter() override { ::close(fd_); }

  absl::Status Append(absl::string_view data) override {
    const int64_t start = offset_;
    while (!data.empty()) {
      const ssize_t n = ::write(fd_, data.data(), data.size());
      if (n < 0) {
        if (errno == EINTR) continue;
        return Errno("write", path_);
      }
      data.remove_prefix(static_cast<size_t>(n));
      offset_ += n;
    }
    // Start writing these pages back now, without waiting: the disk works
    // while the next chunk arrives, and the fdatasync of the next
    // checkpoint only waits for the tail (RocksDB's bytes_per_sync idea).
    // Advisory: an error here changes nothing, Sync() reports for real.
    (void)::sync_file_range(fd_, start, offset_ - start, SYNC_FILE_RANGE_WRITE);
    return absl::OkStatus();
  }

  absl::Status Sync() override {
    return ::fdatasync(fd_) == 0 ? absl::OkStatus() : Errno("fdatasync", path_);
  }

 private:
  const int fd_;
  const std::string path_;
  int64_t offset_;
};

class FsBlobReader : public BlobReader {
 public:
  FsBlobReader(int fd, int64_t size, std::string path)
      : fd_(fd), size_(size), path_(std::move(path)) {}
  ~FsBlobReader() override { ::close(fd_); }

  int64_t size() const override { return size_; }

  absl::Status ReadAt(int64_t offset, size_t max, std::string* out) override {
    out->resize(max);
    size_t got = 0;
    while (got < max) {
      const ssize_t n = ::pread(fd_, out->data() + got, max - got, offset + got);
      if (n < 0) {
        if (errno == EINTR) continue;
        return Errno("read", path_);
      }
      if (n == 0) break;
      got += static_cast<size_t>(n);
    }
    out->resize(got);
    return absl::OkStatus();
  }

 private:
  const int fd_;
  const int64_t size_;
  const std::string path_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<FsBlobStore>> FsBlobStore::Open(const std::string& root) {
  std::error_code ec;
  for (const std::string& dir : {root, absl::StrCat(root, "/", kStagingDir),
                                 absl::StrCat(root, "/", kOriginals),
                                 absl::StrCat(root, "/", kRenditions)}) {
    std::filesystem::create_directories(dir, ec);
    if (ec) return absl::InternalError(absl::StrCat("blob store ", dir, ": ", ec.message()));
  }
  return std::unique_ptr<FsBlobStore>(new FsBlobStore(root));
}

absl::StatusOr<std::string> FsBlobStore::ObjectPath(absl::string_view bucket,
                                                    absl::string_view key) const {
  if (auto s = ValidateBucket("bucket", bucket); !s.ok()) return s;
  if (auto s = ValidateKey("key", key); !s.ok()) return s;
  return absl::StrCat(root_, "/", bucket, "/", key);
}

absl::StatusOr<std::string> FsBlobStore::StagingPath(absl::string_view staging_id) const {
  if (auto s = ValidateId("staging id", staging_id); !s.ok()) return s;
  return absl::StrCat(root_, "/", kStagingDir, "/", staging_id);
}

absl::StatusOr<std::unique_ptr<StagedWriter>> FsBlobStore::OpenStaged(
    absl::string_view staging_id, int64_t offset) {
  auto path = StagingPath(staging_id);
  if (!path.ok()) return path.status();
  const bool fresh = offset == 0;
  const int fd = ::open(path->c_str(), O_WRONLY | O_CLOEXEC | (fresh ? O_CREAT | O_TRUNC : 0), 0600);
  if (fd < 0) {
    if (errno == ENOENT) {
      return absl::FailedPreconditionError(
          absl::StrCat("staged bytes of ", staging_id, " are missing"));
    }
    return Errno("open", *path);
  }
  struct stat st;
  if (::fstat(fd, &st) != 0 || st.st_size < offset) {
    ::close(fd);
    return absl::FailedPreconditionError(
        absl::StrCat("staged bytes of ", staging_id, " end before offset ", offset));
  }
  // Bytes past the recorded offset were written before a crash and never
  // acknowledged: drop them so the resumed stream continues the file.
  if (st.st_size > offset && ::ftruncate(fd, offset) != 0) {
    const int err = errno;
    ::close(fd);
    return Errno("truncate", *path, err);
  }
  if (::lseek(fd, offset, SEEK_SET) < 0) {
    const int err = errno;
    ::close(fd);
    return Errno("seek", *path, err);
  }
  if (fresh) {
    if (auto s = SyncDir(absl::StrCat(root_, "/", kStagingDir)); !s.ok()) {
      ::close(fd);
      return s;
    }
  }
  return std::unique_ptr<StagedWriter>(new FsStagedWriter(fd, *std::move(path), offset));
}

absl::Status FsBlobStore::CommitStaged(absl::string_view staging_id, absl::string_view bucket,
                                       absl::string_view key) {
  auto from = StagingPath(staging_id);
  if (!from.ok()) return from.status();
  auto to = ObjectPath(bucket, key);
  if (!to.ok()) return to.status();
  const std::string dir = to->substr(0, to->rfind('/'));
  if (auto s = MakeDirs(root_, dir); !s.ok()) return s;
  {
    // The staged bytes were synced as they were acknowledged; sync again so
    // a commit never depends on the caller having done so.
    const int fd = ::open(from->c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      if (errno == ENOENT) {
        struct stat st;
        if (::stat(to->c_str(), &st) == 0) {
          return absl::NotFoundError(absl::StrCat("nothing staged under ", staging_id,
                                                  "; the object is already committed"));
        }
        return absl::FailedPreconditionError(
            absl::StrCat("staged bytes of ", staging_id, " are missing"));
      }
      return Errno("open", *from);
    }
    const int rc = ::fdatasync(fd);
    const int err = errno;
    ::close(fd);
    if (rc != 0) return Errno("fdatasync", *from, err);
  }
  if (::rename(from->c_str(), to->c_str()) != 0) return Errno("rename to", *to);
  if (auto s = SyncDir(dir); !s.ok()) return s;
  return SyncDir(absl::StrCat(root_, "/", kStagingDir));
}

absl::Status FsBlobStore::DiscardStaged(absl::string_view staging_id) {
  auto path = StagingPath(staging_id);
  if (!path.ok()) return path.status();
  if (::unlink(path->c_str()) != 0 && errno != ENOENT) return Errno("unlink", *path);
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<BlobReader>> FsBlobStore::Open(absl::string_view bucket,
                                                              absl::string_view key) {
  auto path = ObjectPath(bucket, key);
  if (!path.ok()) return path.status();
  const int fd = ::open(path->c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Errno("open", *path);
  struct stat st;
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return absl::NotFoundError(absl::StrCat(bucket, "/", key, ": not an object"));
  }
  return std::unique_ptr<BlobReader>(new FsBlobReader(fd, st.st_size, *std::move(path)));
}

absl::StatusOr<bool> FsBlobStore::Exists(absl::string_view bucket, absl::string_view key) {
  auto path = ObjectPath(bucket, key);
  if (!path.ok()) return path.status();
  struct stat st;
  if (::stat(path->c_str(), &st) == 0) return S_ISREG(st.st_mode);
  if (errno == ENOENT || errno == ENOTDIR) return false;
  return Errno("stat", *path);
}

absl::Status FsBlobStore::Delete(absl::string_view bucket, absl::string_view key) {
  auto path = ObjectPath(bucket, key);
  if (!path.ok()) return path.status();
  if (::unlink(path->c_str()) != 0) {
    if (errno == ENOENT || errno == ENOTDIR) return absl::OkStatus();
    return Errno("unlink", *path);
  }
  std::string dir = path->substr(0, path->rfind('/'));
  if (auto s = SyncDir(dir); !s.ok()) return s;
  // Drop directories the deletion emptied, up to the bucket.
  const std::string bucket_dir = absl::StrCat(root_, "/", bucket);
  while (dir.size() > bucket_dir.size() && ::rmdir(dir.c_str()) == 0) {
    dir = dir.substr(0, dir.rfind('/'));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::string>> FsBlobStore::List(absl::string_view bucket,
                                                           absl::string_view prefix) {
  if (auto s = ValidateBucket("bucket", bucket); !s.ok()) return s;
  // Walk only the deepest directory the prefix names.
  const size_t slash = prefix.rfind('/');
  const std::string dir_part = slash == absl::string_view::npos
                                   ? std::string()
                                   : std::string(prefix.substr(0, slash));
  if (!dir_part.empty()) {
    if (auto s = ValidateKey("prefix", dir_part); !s.ok()) return s;
  }
  const std::string bucket_dir = absl::StrCat(root_, "/", bucket);
  const std::string start = dir_part.empty() ? bucket_dir : absl::StrCat(bucket_dir, "/", dir_part);
  std::vector<std::string> keys;
  std::error_code ec;
  std::filesystem::recursive_directory_iterator it(start, ec), end;
  if (ec) {
    if (ec == std::errc::no_such_file_or_directory || ec == std::errc::not_a_directory) {
      return keys;
    }
    return absl::InternalError(absl::StrCat("list ", start, ": ", ec.message()));
  }
  for (; it != end; it.increment(ec)) {
    if (ec) return absl::InternalError(absl::StrCat("list ", start, ": ", ec.message()));
    if (!it->is_regular_file(ec)) continue;
    std::string key = it->path().string().substr(bucket_dir.size() + 1);
    if (absl::StartsWith(key, prefix)) keys.push_back(std::move(key));
  }
  std::sort(keys.begin(), keys.end());
  return keys;
}

absl::StatusOr<std::vector<std::string>> FsBlobStore::ListStaged() {
  const std::string dir = absl::StrCat(root_, "/", kStagingDir);
  std::vector<std::string> ids;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    ids.push_back(entry.path().filename().string());
  }
  if (ec) return absl::InternalError(absl::StrCat("list ", dir, ": ", ec.message()));
  return ids;
}

}  // namespace pettube::upload
