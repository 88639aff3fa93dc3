#include "cli/pettube/downloader.h"

#include <curl/curl.h>
#include <sys/stat.h>

#include <cstdio>
#include <memory>

#include "absl/strings/str_cat.h"
#include "cli/pettube/uploader.h"

namespace pettube::cli {
namespace {

struct Transfer {
  CURL* curl = nullptr;
  std::FILE* file = nullptr;
  std::string part_path;
  int64_t start = 0;
  int64_t received = 0;
  bool decided = false;   // response code seen and file positioned
  long code = 0;
  const DownloadCallbacks* callbacks = nullptr;
};

size_t OnBody(char* data, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  if (!t->decided) {
    t->decided = true;
    curl_easy_getinfo(t->curl, CURLINFO_RESPONSE_CODE, &t->code);
    if (t->code == 200) {
      // The server sent the whole object (no Range support, or we asked
      // for none): start the part file over.
      std::fclose(t->file);
      t->file = std::fopen(t->part_path.c_str(), "wb");
      t->start = 0;
    } else if (t->code != 206) {
      return size * n;  // An error body: read and drop it.
    }
    if (t->callbacks->on_start) {
      curl_off_t length = -1;
      curl_easy_getinfo(t->curl, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &length);
      t->callbacks->on_start(t->start, length >= 0 ? t->start + length : 0);
    }
  }
  if (t->code != 200 && t->code != 206) return size * n;
  if (t->file == nullptr || std::fwrite(data, size, n, t->file) != n) return 0;  // Aborts.
  t->received += size * n;
  if (t->callbacks->on_progress) t->callbacks->on_progress(t->start + t->received);
  return size * n;
}

}  // namespace

absl::Status DownloadToFile(const std::string& url, const std::string& path,
                            const std::string& expected_sha256, int64_t expected_size,
                            const DownloadCallbacks& callbacks) {
  static const bool initialized = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK;
  if (!initialized) return absl::InternalError("libcurl failed to initialize");
  Transfer t;
  t.callbacks = &callbacks;
  t.part_path = path + ".part";
  struct stat st {};
  if (::stat(t.part_path.c_str(), &st) == 0) t.start = st.st_size;
  auto finish_and_check = [&]() -> absl::Status {
    if (expected_size > 0) {
      struct stat done {};
      if (::stat(t.part_path.c_str(), &done) != 0 || done.st_size != expected_size) {
        std::remove(t.part_path.c_str());
        return absl::DataLossError(absl::StrCat(path, ": got ", done.st_size, " bytes, expected ",
                                                expected_size));
      }
    }
    if (!expected_sha256.empty()) {
      auto sha = Sha256OfFile(t.part_path);
      if (!sha.ok()) return sha.status();
      if (*sha != expected_sha256) {
        std::remove(t.part_path.c_str());
        return absl::DataLossError(absl::StrCat(path, ": SHA-256 ", *sha, " does not match ",
                                                expected_sha256, "; run again to download anew"));
      }
    }
    if (std::rename(t.part_path.c_str(), path.c_str()) != 0) {
      return absl::InternalError(absl::StrCat(path, ": cannot rename the part file"));
    }
    return absl::OkStatus();
  };
  if (expected_size > 0 && t.start == expected_size) {
    if (callbacks.on_start) callbacks.on_start(t.start, expected_size);
    return finish_and_check();  // A previous run got every byte.
  }

  t.file = std::fopen(t.part_path.c_str(), "ab");
  if (t.file == nullptr) return absl::InternalError(absl::StrCat(t.part_path, ": cannot open"));
  std::unique_ptr<CURL, decltype(&curl_easy_cleanup)> curl(curl_easy_init(), curl_easy_cleanup);
  t.curl = curl.get();
  curl_easy_setopt(t.curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(t.curl, CURLOPT_WRITEFUNCTION, OnBody);
  curl_easy_setopt(t.curl, CURLOPT_WRITEDATA, &t);
  curl_easy_setopt(t.curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(t.curl, CURLOPT_CONNECTTIMEOUT, 10L);
  curl_easy_setopt(t.curl, CURLOPT_LOW_SPEED_LIMIT, 1L);
  curl_easy_setopt(t.curl, CURLOPT_LOW_SPEED_TIME, 30L);
  const std::string range = absl::StrCat(t.start, "-");
  if (t.start > 0) curl_easy_setopt(t.curl, CURLOPT_RANGE, range.c_str());
  const CURLcode rc = curl_easy_perform(t.curl);
  if (!t.decided) curl_easy_getinfo(t.curl, CURLINFO_RESPONSE_CODE, &t.code);
  if (t.file != nullptr) std::fclose(t.file);
  if (rc != CURLE_OK) {
    return absl::UnavailableError(absl::StrCat("GET ", url, ": ", curl_easy_strerror(rc),
                                               "; run again to resume"));
  }
  if (t.code == 416 && t.start > 0) return finish_and_check();  // Nothing left to fetch.
  if (t.code == 404) return absl::NotFoundError(absl::StrCat("GET: HTTP 404 (no such object)"));
  if (t.code == 401 || t.code == 403) {
    return absl::PermissionDeniedError(
        absl::StrCat("GET: HTTP ", t.code, " (URL expired or not valid; ask for a fresh one)"));
  }
  if (t.code != 200 && t.code != 206) {
    return absl::UnavailableError(absl::StrCat("GET: HTTP ", t.code));
  }
  if (!t.decided && callbacks.on_start) callbacks.on_start(t.start, expected_size);
  return finish_and_check();
}

}  // namespace pettube::cli
