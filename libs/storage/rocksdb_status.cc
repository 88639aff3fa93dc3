#include "libs/storage/rocksdb_status.h"

#include <string>

#include "absl/strings/str_cat.h"

namespace pettube::storage {

absl::Status FromRocksDb(const rocksdb::Status& status, absl::string_view what) {
  if (status.ok()) return absl::OkStatus();
  const std::string text = status.ToString();
  const std::string message = absl::StrCat(what, ": ", text);
  if (status.IsIOError() && text.find("lock") != std::string::npos) {
    return absl::UnavailableError(message);
  }
  if (status.IsCorruption()) return absl::DataLossError(message);
  if (status.IsBusy() || status.IsTimedOut() || status.IsTryAgain()) {
    return absl::UnavailableError(message);
  }
  return absl::InternalError(message);
}

}  // namespace pettube::storage
